package jobs

import (
	"fmt"
	"maps"
	"slices"
)

// EnvRef is an environment variable of a task whose value is not in the task: it is
// read, when the task starts, from the environment of the machine that runs it (a
// worker's; gorun's own for a local run), so that a secret never travels with the
// task nor rests on a broker. A task file writes it `env: {TOKEN: {from_worker:
// API_TOKEN}}`.
type EnvRef struct {
	Name string `json:"name"`        // the task's variable
	From string `json:"from_worker"` // the variable of the running machine's environment
}

// ResolveEnvFrom returns the KEY=VALUE pairs of refs, each value looked up in env
// (KEY=VALUE pairs, the last of a key winning). A variable env lacks is an error
// naming it: the task must not start with a secret silently empty.
func ResolveEnvFrom(refs []EnvRef, env []string) ([]string, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	have := make(map[string]string, len(env))
	for _, kv := range env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				have[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		v, ok := have[r.From]
		if !ok {
			return nil, fmt.Errorf("env %s: from_worker %s is not set on this machine", r.Name, r.From)
		}
		out = append(out, r.Name+"="+v)
	}
	return out, nil
}

// mergeEnvFrom resolves the environment of a task from its file's defaults d and
// its own settings sp: a task's value, literal or from_worker, replaces the default's
// of the same name. The literal pairs come out as mergeEnv makes them.
func mergeEnvFrom(d, sp *Defaults) ([]string, []EnvRef) {
	envD, fromD := d.Env, d.EnvFrom
	if len(fromD) == 0 && len(sp.EnvFrom) == 0 {
		return mergeEnv(envD, sp.Env), nil
	}
	if len(sp.EnvFrom) > 0 && len(envD) > 0 {
		envD = maps.Clone(envD)
		for k := range sp.EnvFrom {
			delete(envD, k)
		}
	}
	from := map[string]string{}
	for k, v := range fromD {
		if _, ok := sp.Env[k]; !ok {
			from[k] = v
		}
	}
	maps.Copy(from, sp.EnvFrom)
	var refs []EnvRef
	for _, k := range slices.Sorted(maps.Keys(from)) {
		refs = append(refs, EnvRef{Name: k, From: from[k]})
	}
	return mergeEnv(envD, sp.Env), refs
}
