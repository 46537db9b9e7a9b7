package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// config gives a command's settings from, in order of precedence, its flags, GORUN_*
// environment variables and a config file. Values are read as strings and checked here,
// so that an error names where the bad value came from.
type config struct {
	v    *viper.Viper
	cmd  *cobra.Command
	file string // the config file read, or ""
}

// loadConfig binds cmd's flags, the environment and the config file: --config (or
// GORUN_CONFIG), else ./gorun.yaml, else $XDG_CONFIG_HOME/gorun/config.yaml. A config
// file key that is not a flag of exec is an error.
func loadConfig(cmd *cobra.Command) (*config, error) {
	v := viper.New()
	v.SetEnvPrefix("GORUN")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(cmd.Flags()); err != nil {
		return nil, fmt.Errorf("bind flags: %w", err)
	}
	c := &config{v: v, cmd: cmd}
	file, err := c.findFile()
	if err != nil || file == "" {
		return c, err
	}
	fileOnly := viper.New()
	fileOnly.SetConfigFile(file)
	fileOnly.SetConfigType("yaml")
	if err := fileOnly.ReadInConfig(); err != nil {
		return nil, usagef(cmd.CommandPath(), "read config %s: %v", file, firstLine(err.Error()))
	}
	known := NewCmdExec(nil, nil, nil).Flags() // the config file holds exec's settings
	for _, k := range fileOnly.AllKeys() {
		if known.Lookup(k) == nil || k == "config" {
			return nil, usagef(cmd.CommandPath(), "%s: unknown key %q", file, k)
		}
	}
	v.SetConfigFile(file)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		return nil, usagef(cmd.CommandPath(), "read config %s: %v", file, firstLine(err.Error()))
	}
	c.file = file
	return c, nil
}

func (c *config) findFile() (string, error) {
	if f := c.v.GetString("config"); f != "" {
		if _, err := os.Stat(f); err != nil {
			return "", usagef(c.cmd.CommandPath(), "config file %s: %v", f, errors.Unwrap(err))
		}
		return f, nil
	}
	candidates := []string{"gorun.yaml"}
	if dir, err := os.UserConfigDir(); err == nil {
		candidates = append(candidates, filepath.Join(dir, "gorun", "config.yaml"))
	}
	for _, f := range candidates {
		if st, err := os.Stat(f); err == nil && !st.IsDir() {
			return f, nil
		}
	}
	return "", nil
}

// isSet reports whether key was given by a flag, the environment or the config file.
func (c *config) isSet(key string) bool { return c.v.IsSet(key) }

// source names where key's value came from, for error messages.
func (c *config) source(key string) string {
	if f := c.cmd.Flags().Lookup(key); f != nil && f.Changed {
		return "--" + key
	}
	env := "GORUN_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
	if _, ok := os.LookupEnv(env); ok {
		return env
	}
	if c.file != "" {
		return c.file + ": " + key
	}
	return key
}

func (c *config) errorf(key, format string, args ...any) error {
	return usagef(c.cmd.CommandPath(), "%s: %s", c.source(key), fmt.Sprintf(format, args...))
}

// str returns key's value, or def when it is not set.
func (c *config) str(key, def string) string {
	if !c.isSet(key) {
		return def
	}
	return strings.TrimSpace(c.v.GetString(key))
}

// duration returns key's value, or nil when it is not set.
func (c *config) duration(key string) (*time.Duration, error) {
	if !c.isSet(key) {
		return nil, nil
	}
	d, err := input.ParseDuration(c.v.GetString(key))
	if err != nil {
		return nil, c.errorf(key, "%v", err)
	}
	return &d, nil
}

// count returns key's value, at least least, or nil when it is not set.
func (c *config) count(key string, least int) (*int, error) {
	if !c.isSet(key) {
		return nil, nil
	}
	s := strings.TrimSpace(c.v.GetString(key))
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || fmt.Sprint(n) != strings.TrimPrefix(s, "+") {
		return nil, c.errorf(key, "invalid number %q", s)
	}
	if n < least {
		return nil, c.errorf(key, "must be at least %d, got %d", least, n)
	}
	return &n, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// boolean returns key's value, false when it is not set.
func (c *config) boolean(key string) (bool, error) {
	if !c.isSet(key) {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(c.v.GetString(key))) {
	case "1", "t", "true", "yes", "on":
		return true, nil
	case "0", "f", "false", "no", "off", "":
		return false, nil
	}
	return false, c.errorf(key, "invalid boolean %q: want true or false", c.v.GetString(key))
}
