package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/gorun/gorun/internal/input"
)

// sources records where each flag's value came from: the command line, a GORUN_*
// variable or the config file, so that an error names it (--rate, GORUN_WORKERS,
// config file /etc/gorun.yaml: grace).
type sources struct {
	cmd  string            // the command path, for usage errors
	from map[string]string // flag name → where its value came from; absent: the default
}

// applyEnvAndConfig sets every flag of fs that the command line did not set from its
// GORUN_<FLAG> variable, else from the config file's key of the same name: --config
// (or GORUN_CONFIG), else $XDG_CONFIG_HOME/gorun/config.yaml. A file that happens to
// be in the current directory is never read: it may well be a task file. The
// values go through the flags' own parsers, so one parser reads every value; a config
// file key that is not a flag of exec is an error.
func applyEnvAndConfig(cmdPath, configFlag string, fs *pflag.FlagSet) (*sources, error) {
	s := &sources{cmd: cmdPath, from: map[string]string{}}
	file, err := s.findFile(configFlag)
	if err != nil {
		return nil, err
	}
	var conf *viper.Viper
	if file != "" {
		if conf, err = s.readFile(file); err != nil {
			return nil, err
		}
	}
	var setErr error
	fs.VisitAll(func(f *pflag.Flag) {
		if setErr != nil {
			return
		}
		if f.Changed {
			s.from[f.Name] = "--" + f.Name
			return
		}
		value, from := "", ""
		if v, ok := os.LookupEnv(envName(f.Name)); ok && v != "" {
			value, from = v, envName(f.Name)
		} else if conf != nil && conf.IsSet(f.Name) {
			value, from = conf.GetString(f.Name), "config file "+file+": "+f.Name
		} else {
			return
		}
		s.from[f.Name] = from
		if setErr = setFlag(fs, f, value); setErr != nil {
			setErr = s.errorf(f.Name, "%v", setErr)
		}
	})
	return s, setErr
}

// envName is the variable that sets flag name: GORUN_RETRY_DELAY for retry-delay.
func envName(name string) string {
	return "GORUN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// setFlag sets f to value, a string from the environment or the config file, read as
// gorun has always read them there: numbers in decimal, durations not negative,
// booleans as true/false, yes/no, on/off or 1/0, and surrounding blanks ignored.
func setFlag(fs *pflag.FlagSet, f *pflag.Flag, value string) error {
	value = strings.TrimSpace(value)
	switch f.Value.Type() {
	case "int":
		var n int
		if _, err := fmt.Sscan(value, &n); err != nil || fmt.Sprint(n) != strings.TrimPrefix(value, "+") {
			return fmt.Errorf("invalid number %q", value)
		}
		value = fmt.Sprint(n)
	case "duration":
		d, err := input.ParseDuration(value)
		if err != nil {
			return err
		}
		value = d.String()
	case "bool":
		switch strings.ToLower(value) {
		case "1", "t", "true", "yes", "on":
			value = "true"
		case "0", "f", "false", "no", "off", "":
			value = "false"
		default:
			return fmt.Errorf("invalid boolean %q: want true or false", value)
		}
	case "timeout", "workers": // parsed by the flag's own value, whose error says it all
		if err := f.Value.Set(value); err != nil {
			return err
		}
	}
	return fs.Set(f.Name, value)
}

// errorf returns a usage error about flag name that names where its value came from.
func (s *sources) errorf(name, format string, args ...any) error {
	from, ok := s.from[name]
	if !ok {
		from = name
	}
	return usagef(s.cmd, "%s: %s", from, fmt.Sprintf(format, args...))
}

func (s *sources) findFile(configFlag string) (string, error) {
	f := configFlag
	if f == "" {
		f = os.Getenv("GORUN_CONFIG")
	}
	if f != "" {
		if _, err := os.Stat(f); err != nil {
			return "", usagef(s.cmd, "config file %s: %v", f, errors.Unwrap(err))
		}
		return f, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", nil // neither $XDG_CONFIG_HOME nor $HOME: no config file
	}
	f = filepath.Join(dir, "gorun", "config.yaml")
	if st, err := os.Stat(f); err == nil && !st.IsDir() {
		return f, nil
	}
	return "", nil
}

// readFile reads the config file, whose keys must all be flags of exec.
func (s *sources) readFile(file string) (*viper.Viper, error) {
	v := viper.New()
	v.SetConfigFile(file)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		return nil, usagef(s.cmd, "config file %s: %v", file, firstLine(err.Error()))
	}
	known := newExecFlags().set // the config file holds exec's settings
	for _, k := range v.AllKeys() {
		if known.Lookup(k) == nil {
			return nil, usagef(s.cmd, "config file %s: unknown key %q", file, k)
		}
	}
	return v, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
