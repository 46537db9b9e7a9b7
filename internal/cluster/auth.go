package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ConnOptions say how a client or a worker reaches the broker and proves who it is.
// The zero value connects once, anonymously, without TLS (a tls:// URL still
// requires TLS, checked against the system's roots).
type ConnOptions struct {
	Token   string // the broker's token; read from a file or GORUN_TOKEN, never a flag value
	Creds   string // a NATS credentials file, for servers that use accounts
	TLSCert string // client certificate (PEM), with TLSKey
	TLSKey  string
	TLSCA   string // the CA that signed the broker's certificate; setting it turns TLS on

	// ConnectTimeout is how long Dial keeps trying to reach a broker that is down or
	// unreachable, with backoff; 0: one try.
	ConnectTimeout time.Duration
	// Log receives one line per failed try, at most every few seconds; nil: none.
	Log io.Writer
}

func (o ConnOptions) natsOptions() []nats.Option {
	var opts []nats.Option
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts
}

// Dial connects to the broker at url as Connect does, with the credentials and TLS
// of o. While the broker cannot be reached it tries again, with backoff from 250ms
// up to 5s, for o.ConnectTimeout, then returns the last error. A refusal (a wrong or
// missing token, a bad certificate) is returned at once: trying again cannot help.
// It blocks until connected, refused, out of time, or ctx ends.
func Dial(ctx context.Context, url string, o ConnOptions) (*Conn, error) {
	deadline := time.Now().Add(o.ConnectTimeout)
	wait, lastLog := 250*time.Millisecond, time.Time{}
	for {
		c, err := Connect(ctx, url, o.natsOptions()...)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			// The server's own words are capitalised; ErrAuthorization says the same.
			return nil, fmt.Errorf("broker %s refused the connection: %w: give its token with --token-file or GORUN_TOKEN, or credentials with --creds", url, nats.ErrAuthorization)
		}
		left := time.Until(deadline)
		if !unreachable(err) || left <= 0 || ctx.Err() != nil {
			return nil, err
		}
		if o.Log != nil && time.Since(lastLog) >= 3*time.Second {
			fmt.Fprintf(o.Log, "gorun: %v; trying again for %v\n", err, left.Round(time.Second))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(min(wait, left)):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// unreachable tells whether err means the broker could not be reached (down, not
// yet up, or the network), as opposed to a refusal or a misconfiguration.
func unreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) || errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF)
}

// BrokerSecurity is how an embedded broker (Serve) guards its port and its store. The
// zero value is anonymous and plain, which Serve accepts only on a loopback address.
type BrokerSecurity struct {
	Token   string // clients must present it
	TLSCert string // the broker's certificate (PEM); with TLSKey, turns TLS on
	TLSKey  string
	TLSCA   string // with TLS: clients must present a certificate signed by this CA
	// StoreKey encrypts the store at rest (JetStream's store cipher, ChaCha20-Poly1305).
	// A store written with a key can be read only with the same key.
	StoreKey string
}

// ErrAnonymous means a broker would take anonymous clients on an address others can
// reach.
var ErrAnonymous = errors.New("refusing to serve anonymous clients off loopback: give a token (--token-file or GORUN_TOKEN) or require client certificates (--tls-ca with --tls-cert and --tls-key)")

// apply sets sec on the server's options, which listen on host.
func (sec BrokerSecurity) apply(o *server.Options) error {
	if (sec.TLSCert == "") != (sec.TLSKey == "") {
		return errors.New("tls: give both a certificate and its key")
	}
	if sec.TLSCA != "" && sec.TLSCert == "" {
		return errors.New("tls: a CA for client certificates needs the broker's own certificate and key")
	}
	if sec.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: sec.TLSCert, KeyFile: sec.TLSKey, CaFile: sec.TLSCA, Verify: sec.TLSCA != ""})
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		o.TLSConfig, o.TLSVerify, o.TLSTimeout = tc, sec.TLSCA != "", 5
	}
	o.Authorization = sec.Token
	if sec.StoreKey != "" {
		o.JetStreamKey, o.JetStreamCipher = sec.StoreKey, server.ChaCha
	}
	if sec.Token == "" && !o.TLSVerify && !loopback(o.Host) {
		return fmt.Errorf("listen on %s: %w", o.Host, ErrAnonymous)
	}
	return nil
}

// routeUser is the user name brokers present to each other on the cluster port; the
// password is the token.
const routeUser = "gorun-route"

// ErrAnonymousRoutes means a broker would take routes from anyone on an address others
// can reach: any broker that joined would see every run and could hand work to every
// worker.
var ErrAnonymousRoutes = errors.New("refusing to take routes from unauthenticated brokers off loopback: give a token (--token-file or GORUN_TOKEN) or TLS with a CA (--tls-ca with --tls-cert and --tls-key)")

// guardRoutes gives the cluster port (WithCluster) the client port's protection:
// with a token, brokers present it to each other (user gorun-route, the token as
// password; the route URLs carry it in memory only, never on a command line); with
// TLS and a CA, routes are encrypted with the broker's certificate and each broker
// must present one the CA signed, for either end of a route (so node certificates
// need clientAuth as well as serverAuth). Without a CA, a broker has nothing to check
// another's certificate against, and routes stay plain (authenticated by the token).
// A cluster port off loopback with neither a token nor a CA is refused.
func (sec BrokerSecurity) guardRoutes(o *server.Options) error {
	if o.Cluster.Port == 0 {
		return nil
	}
	if sec.Token != "" {
		o.Cluster.Username, o.Cluster.Password = routeUser, sec.Token
		for _, u := range o.Routes {
			u.User = url.UserPassword(routeUser, sec.Token)
		}
	}
	if sec.TLSCert != "" && sec.TLSCA != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: sec.TLSCert, KeyFile: sec.TLSKey, CaFile: sec.TLSCA, Verify: true})
		if err != nil {
			return fmt.Errorf("cluster tls: %w", err)
		}
		tc.RootCAs = tc.ClientCAs // a broker is the client of the routes it dials
		o.Cluster.TLSConfig, o.Cluster.TLSTimeout = tc, 5
	}
	if sec.Token == "" && sec.TLSCA == "" && !loopback(o.Cluster.Host) {
		return fmt.Errorf("cluster listen on %s: %w", o.Cluster.Host, ErrAnonymousRoutes)
	}
	return nil
}

// loopback tells whether host names only this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReadSecret returns the first line of file, trimmed: a token or a key. It refuses an
// empty file.
func ReadSecret(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	s, _, _ := strings.Cut(string(b), "\n")
	if s = strings.TrimSpace(s); s == "" {
		return "", fmt.Errorf("%s is empty", file)
	}
	return s, nil
}
