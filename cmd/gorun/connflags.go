package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/gorun/gorun/internal/cluster"
)

// TokenVar is the variable that holds the broker's token when no --token-file is
// given. A secret is never a flag value: flag values show in every process list.
const TokenVar = "GORUN_TOKEN"

// ConnFlags say how worker and exec --broker reach a broker: its token, NATS
// credentials, TLS, and how long to wait for it. They hold file names, never secrets.
type ConnFlags struct {
	TokenFile      string
	Creds          string
	TLSCert        string
	TLSKey         string
	TLSCA          string
	ConnectTimeout time.Duration
}

func (g *ConnFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&g.TokenFile, "token-file", "", "read the broker's token from this file (default: $"+TokenVar+")")
	f.StringVar(&g.Creds, "creds", "", "NATS credentials file, for a nats-server that uses accounts")
	f.StringVar(&g.TLSCert, "tls-cert", "", "client certificate (PEM) for TLS, with --tls-key")
	f.StringVar(&g.TLSKey, "tls-key", "", "key of --tls-cert (PEM)")
	f.StringVar(&g.TLSCA, "tls-ca", "", "CA (PEM) that signed the broker's certificate; turns TLS on (a tls:// URL does too)")
	f.DurationVar(&g.ConnectTimeout, "connect-timeout", 30*time.Second, "keep trying to reach the broker this long, with backoff; 0: try once")
}

// check rejects flags that do not go together.
func (g *ConnFlags) check() error {
	if (g.TLSCert == "") != (g.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if g.ConnectTimeout < 0 {
		return fmt.Errorf("--connect-timeout must not be negative, got %v", g.ConnectTimeout)
	}
	return nil
}

// options reads the token (from --token-file, else $GORUN_TOKEN) and returns the
// options to dial with; retries are reported on log.
func (g *ConnFlags) options(log io.Writer) (cluster.ConnOptions, error) {
	o := cluster.ConnOptions{Creds: g.Creds, TLSCert: g.TLSCert, TLSKey: g.TLSKey, TLSCA: g.TLSCA, ConnectTimeout: g.ConnectTimeout, Log: log}
	var err error
	if o.Token, err = readToken(g.TokenFile); err != nil {
		return o, err
	}
	return o, nil
}

// readToken reads the token from file, or else from $GORUN_TOKEN ("" if unset).
func readToken(file string) (string, error) {
	if file == "" {
		return os.Getenv(TokenVar), nil
	}
	tok, err := cluster.ReadSecret(file)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return tok, nil
}

// BrokerSecFlags are how gorun broker guards its port and its store.
type BrokerSecFlags struct {
	TokenFile    string
	TLSCert      string
	TLSKey       string
	TLSCA        string
	StoreKeyFile string
}

func (g *BrokerSecFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&g.TokenFile, "token-file", "", "clients must present the token in this file (default: $"+TokenVar+")")
	f.StringVar(&g.TLSCert, "tls-cert", "", "the broker's certificate (PEM); turns TLS on, with --tls-key")
	f.StringVar(&g.TLSKey, "tls-key", "", "key of --tls-cert (PEM)")
	f.StringVar(&g.TLSCA, "tls-ca", "", "require client certificates signed by this CA (PEM)")
	f.StringVar(&g.StoreKeyFile, "store-key-file", "", "encrypt the store at rest with the key in this file")
}

// check rejects flags that do not go together.
func (g *BrokerSecFlags) check() error {
	if (g.TLSCert == "") != (g.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if g.TLSCA != "" && g.TLSCert == "" {
		return fmt.Errorf("--tls-ca needs the broker's own --tls-cert and --tls-key")
	}
	return nil
}

// security reads the token and the store key and returns what the broker enforces.
func (g *BrokerSecFlags) security() (cluster.BrokerSecurity, error) {
	sec := cluster.BrokerSecurity{TLSCert: g.TLSCert, TLSKey: g.TLSKey, TLSCA: g.TLSCA}
	var err error
	if sec.Token, err = readToken(g.TokenFile); err != nil {
		return sec, err
	}
	if g.StoreKeyFile != "" {
		if sec.StoreKey, err = cluster.ReadSecret(g.StoreKeyFile); err != nil {
			return sec, fmt.Errorf("store key: %w", err)
		}
	}
	return sec, nil
}
