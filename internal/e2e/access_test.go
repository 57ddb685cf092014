package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/gateway"
	"github.com/airtally/airtally/producers/publisher"
)

// Users of the locked-down NATS server (deploy/nats/permissions.md).
const (
	adminUser  = "admin"
	tampaUser  = "acd-tampa-01"
	loaderUser = "loader"
)

// inboxOf is the reply inbox prefix of a user when inboxes are private:
// each client subscribes only below its own prefix (nats.CustomInboxPrefix),
// so no one can read another's replies. With the shared "_INBOX", anyone
// allowed "_INBOX.>" could subscribe to it and receive the events that
// JetStream delivers to a loader's pull requests (TestNATSPermissions
// proves the private prefix closes that).
func inboxOf(user string, private bool) string {
	if !private {
		return "_INBOX"
	}
	return "_INBOX." + user
}

// producerPermissions is a producer's permissions for one source: publish
// to its own event subjects only; subscribe only to its reply inboxes (for
// JetStream's acks).
func producerPermissions(system, instance, inbox string) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"drtv.v1.*." + system + "." + instance}},
		Subscribe: &server.SubjectPermission{Allow: []string{inbox + ".>"}},
	}
}

// loaderPermissions lets a loader use its durable consumer on the events
// stream (look the stream up, create or update and read the consumer, pull
// and acknowledge), write dead letters and delete a card-holding message,
// and nothing else: it cannot publish events.
func loaderPermissions(stream, consumer, inbox string) *server.Permissions {
	api := "$JS.API."
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			api + "INFO",
			api + "STREAM.INFO." + stream,
			api + "CONSUMER.CREATE." + stream + "." + consumer,
			api + "CONSUMER.CREATE." + stream + "." + consumer + ".>",
			api + "CONSUMER.DURABLE.CREATE." + stream + "." + consumer,
			api + "CONSUMER.INFO." + stream + "." + consumer,
			api + "CONSUMER.MSG.NEXT." + stream + "." + consumer,
			"$JS.ACK." + stream + "." + consumer + ".>",
			api + "STREAM.MSG.DELETE." + stream,
			"drtv.dlq.>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{inbox + ".>"}},
	}
}

// lockedStack is a stack whose NATS server has users with permissions;
// s.js is the admin's.
type lockedStack struct {
	*stack
	passwords map[string]string // user → password file
	tls       connect.NATS      // the clients' TLS files, if any
	private   bool              // private reply inboxes per user
}

// newLockedStack starts the locked-down server (extra, if set, edits its
// options further); every connection of connectAs uses clientTLS's files.
// With private, every user has its own reply inbox prefix (inboxOf).
func newLockedStack(t *testing.T, private bool, clientTLS connect.NATS, extra func(*server.Options)) *lockedStack {
	t.Helper()
	dir := t.TempDir()
	ls := &lockedStack{passwords: map[string]string{}, tls: clientTLS, private: private}
	users := []*server.User{
		{Username: adminUser},
		{Username: tampaUser, Permissions: producerPermissions("acd", "tampa-01", inboxOf(tampaUser, private))},
		{Username: loaderUser, Permissions: loaderPermissions(streams.DefaultEventsStream, loader.DefaultConsumer, inboxOf(loaderUser, private))},
	}
	for _, u := range users {
		u.Password = "pw-" + u.Username + "-0123456789abcdef"
		path := filepath.Join(dir, u.Username+".password")
		if err := os.WriteFile(path, []byte(u.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ls.passwords[u.Username] = path
	}
	s := &stack{t: t, logs: &logBuffer{}}
	s.log = s.logs.Logger()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("component logs:\n%s", tail(s.logs.String()))
		}
	})
	s.nats = testenv.StartNATS(t, natsembed.Config{Options: func(o *server.Options) {
		o.Users = users
		if extra != nil {
			extra(o)
		}
	}})
	ls.stack = s
	js, err := jetstream.New(ls.connectAs(adminUser))
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	s.js = js
	if err := streams.Ensure(s.ctx(), js, streams.Config{}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	s.ch, s.db = testenv.NewDatabase(t, true)
	return ls
}

// connectAs connects through connect.ConnectNATS as user, with the
// stack's TLS files. With private inboxes, which connect.NATS cannot set
// yet, it connects with the same reconnect settings and the user's inbox
// prefix instead.
func (ls *lockedStack) connectAs(user string) *nats.Conn {
	ls.t.Helper()
	base := ls.tls
	base.URL, base.User, base.PasswordFile, base.Name = ls.nats.URL, user, ls.passwords[user], "e2e-"+user
	var (
		nc  *nats.Conn
		err error
	)
	if ls.private && user != adminUser {
		nc, err = nats.Connect(base.URL, nats.Name(base.Name), nats.UserInfo(user, ls.password(user)),
			nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.ReconnectBufSize(-1),
			nats.CustomInboxPrefix(inboxOf(user, true)))
	} else {
		nc, err = connect.ConnectNATS(base, ls.log)
	}
	if err != nil {
		ls.t.Fatalf("connect as %s: %v", user, err)
	}
	ls.t.Cleanup(nc.Close)
	testenv.Eventually(ls.t, wait, func() bool { return nc.IsConnected() }, "%s never connected: %v", user, lazy(func() string { return errString(nc.LastError()) }))
	return nc
}

// rawConnect connects as user with the given options, failing at once (no
// retry) and reporting subscription permission errors from SubscribeSync;
// async errors are sent to errs.
func (ls *lockedStack) rawConnect(user string, errs chan<- error) *nats.Conn {
	ls.t.Helper()
	nc, err := nats.Connect(ls.nats.URL, nats.UserInfo(user, ls.password(user)),
		nats.CustomInboxPrefix(inboxOf(user, ls.private)),
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		ls.t.Fatalf("connect as %s: %v", user, err)
	}
	ls.t.Cleanup(nc.Close)
	return nc
}

// password is user's password.
func (ls *lockedStack) password(user string) string {
	ls.t.Helper()
	b, err := os.ReadFile(ls.passwords[user])
	if err != nil {
		ls.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// refusedSubscribe requires a subscription to subj on nc to be refused.
func refusedSubscribe(t *testing.T, nc *nats.Conn, subj string) {
	t.Helper()
	sub, err := nc.SubscribeSync(subj)
	if err == nil {
		// The server's refusal arrives before the answer to a round trip.
		if err = nc.FlushTimeout(wait); err == nil {
			_, err = sub.NextMsg(wait)
		}
	}
	if !errors.Is(err, nats.ErrPermissionViolation) {
		t.Errorf("subscribe to %s: %v, want a permissions violation", subj, err)
	}
}

// startLoaderOn runs a real loader on nc until the test ends.
func (ls *lockedStack) startLoaderOn(nc *nats.Conn) *runningLoader {
	s := ls.stack
	s.t.Helper()
	r := &runningLoader{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	js, err := jetstream.New(nc)
	if err != nil {
		s.t.Fatalf("jetstream: %v", err)
	}
	cfg := loaderConfig(s.db)
	cfg.Logger, cfg.Registerer = s.log.With("loader", "locked"), r.reg
	l, err := loader.New(js, testenv.Open(s.t, s.db), cfg)
	if err != nil {
		s.t.Fatalf("new loader: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- l.Run(ctx) }()
	s.t.Cleanup(func() {
		if err := r.stop(); err != nil {
			s.t.Errorf("loader: %v", err)
		}
	})
	return r
}

// publisherOn opens a publisher on nc with its own spool.
func (ls *lockedStack) publisherOn(nc *nats.Conn) *publisher.Publisher {
	return ls.openPublisher(nc, ls.t.TempDir())
}

// subjectCount is the number of messages of the events stream on subject.
func (ls *lockedStack) subjectCount(subject string) uint64 {
	ls.t.Helper()
	st, err := ls.js.Stream(ls.ctx(), streams.DefaultEventsStream)
	if err != nil {
		ls.t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ls.ctx(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		ls.t.Fatalf("stream info: %v", err)
	}
	return info.State.Subjects[subject]
}

// waitPermissionError waits for an async permissions violation naming
// subject.
func waitPermissionError(t *testing.T, errs <-chan error, subject string) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return
			}
		case <-deadline:
			t.Fatalf("no permissions violation for %s within %s", subject, wait)
		}
	}
}

// TestNATSPermissions: with per-user permissions and private reply
// inboxes, a producer publishes its own source's events (acked and
// loaded), but publishing as another source is refused and stores nothing;
// a producer cannot subscribe to the event subjects, the JetStream API or
// other users' inboxes, and sees none of the loader's deliveries in its
// own; the loader consumes and acks with its own user, but cannot publish
// events nor subscribe to them directly.
func TestNATSPermissions(t *testing.T) {
	ls := newLockedStack(t, true, connect.NATS{}, nil)
	tampa := source("acd", "tampa-01")
	miami := source("acd", "miami-01")

	// The producer's own reply inboxes, which its permissions allow, are
	// watched for any event the loader is delivered.
	perrs := make(chan error, 16)
	snoop := ls.rawConnect(tampaUser, perrs)
	inbox, err := snoop.SubscribeSync(inboxOf(tampaUser, true) + ".>")
	if err != nil {
		t.Fatalf("producer: subscribe to its reply inboxes: %v", err)
	}

	pub := ls.publisherOn(ls.connectAs(tampaUser))
	own := newEvents(tampa, 20)
	publishAll(t, pub, own, publisher.StatusAcked)

	ls.startLoaderOn(ls.connectAs(loaderUser))
	ls.waitRows(uint64(len(own)))
	ls.checkIDs(ids(own))

	t.Run("producer publishing as another source", func(t *testing.T) {
		foreign := newEvent(miami)
		subj := subject(foreign)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		js, err := jetstream.New(snoop)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, subj, encoded(t, foreign, 1)); err == nil {
			t.Fatalf("publish to %s as %s was acked", subj, tampaUser)
		}
		waitPermissionError(t, perrs, subj)
		if n := ls.subjectCount(subj); n != 0 {
			t.Fatalf("%d messages stored on %s", n, subj)
		}
	})

	t.Run("producer subscribing to events", func(t *testing.T) {
		for _, subj := range []string{"drtv.>", "drtv.v1.*.acd.tampa-01", "$JS.API.>", "_INBOX.>", inboxOf(loaderUser, true) + ".>"} {
			refusedSubscribe(t, snoop, subj)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		js, _ := jetstream.New(snoop)
		if _, err := js.Stream(ctx, streams.DefaultEventsStream); err == nil {
			t.Errorf("a producer read the stream's information through the JetStream API")
		}
	})

	t.Run("producer sees no delivery in its inboxes", func(t *testing.T) {
		// Every delivery to the loader happened before its rows were
		// loaded; a round trip on the snooping connection now comes after
		// any copy the server would have sent it.
		if err := snoop.FlushTimeout(wait); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := inbox.NextMsg(0)
			if err != nil {
				break
			}
			if strings.HasPrefix(m.Subject, "drtv.") || bytes.Contains(m.Data, []byte(own[0].EventID.String())) {
				t.Fatalf("the producer received a delivery of the loader on %s", m.Subject)
			}
		}
	})

	t.Run("loader publishing or subscribing to events", func(t *testing.T) {
		lerrs := make(chan error, 16)
		lc := ls.rawConnect(loaderUser, lerrs)
		forged := newEvent(tampa)
		subj := subject(forged)
		before := ls.subjectCount(subj)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		js, _ := jetstream.New(lc)
		if _, err := js.Publish(ctx, subj, encoded(t, forged, 999)); err == nil {
			t.Fatalf("the loader's publish to %s was acked", subj)
		}
		waitPermissionError(t, lerrs, subj)
		if n := ls.subjectCount(subj); n != before {
			t.Fatalf("%s holds %d messages after the loader's publish, want %d", subj, n, before)
		}
		for _, subj := range []string{"drtv.>", "_INBOX.>"} {
			refusedSubscribe(t, lc, subj)
		}
	})
}

// TestNATSTLS: with a NATS server that requires TLS and client
// certificates, the publisher and the loader connect through
// connect.ConnectNATS with the CA, certificate and key files and the
// events arrive in ClickHouse; a client that does not trust the CA, or has
// no client certificate, is refused.
func TestNATSTLS(t *testing.T) {
	c := testenv.NewCerts(t)
	clientTLS := connect.NATS{CAFile: c.CA, CertFile: c.ClientCert, KeyFile: c.ClientKey}
	ls := newLockedStack(t, false, clientTLS, func(o *server.Options) {
		o.TLS, o.TLSVerify, o.TLSTimeout = true, true, 5
		o.TLSConfig = &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{c.Server},
			ClientCAs:    c.Pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
		}
	})
	pub := ls.publisherOn(ls.connectAs(tampaUser))
	evs := newEvents(source("acd", "tampa-01"), 10)
	publishAll(t, pub, evs, publisher.StatusAcked)
	ls.startLoaderOn(ls.connectAs(loaderUser))
	ls.waitRows(uint64(len(evs)))
	ls.checkIDs(ids(evs))

	user := nats.UserInfo(tampaUser, ls.password(tampaUser))
	cases := []struct {
		name string
		opts []nats.Option
		want string
	}{
		{name: "without the CA", opts: []nats.Option{nats.ClientCert(c.ClientCert, c.ClientKey)}, want: "certificate"},
		{name: "without a client certificate", opts: []nats.Option{nats.RootCAs(c.CA)}, want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(ls.nats.URL, append(tc.opts, user, nats.Timeout(5*time.Second))...)
			if err == nil {
				// A refused client certificate may surface only at the
				// first round trip.
				err = nc.FlushTimeout(5 * time.Second)
				nc.Close()
			}
			if err == nil {
				t.Fatal("connected")
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestGatewayTLS: the gateway's handler served over TLS with a generated
// certificate takes events from a client that trusts the CA (loaded into
// ClickHouse); a client that does not is refused.
func TestGatewayTLS(t *testing.T) {
	c := testenv.NewCerts(t)
	s := newStack(t)
	pub, _ := s.newPublisher(t.TempDir())
	gw, err := gateway.New(gateway.Config{
		Tokens: map[string]gateway.Grant{gatewayToken: {Name: "e2e", System: gateway.Any, Instance: gateway.Any}},
		Logger: s.log,
	}, pub)
	if err != nil {
		t.Fatalf("new gateway: %v", err)
	}
	srv := httptest.NewUnstartedServer(gw.Handler())
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{c.Server}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.startLoader("tls")

	evs := newEvents(source("web", "shop-1"), 5)
	post := func(client *http.Client) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", bytes.NewReader(wireArray(t, evs)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+gatewayToken)
		req.Header.Set("Content-Type", "application/json")
		return client.Do(req)
	}
	if _, err := post(&http.Client{Timeout: wait}); err == nil {
		t.Fatal("a client without the CA was served")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %q does not mention the certificate", err)
	}
	trusting := &http.Client{Timeout: wait, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool, MinVersion: tls.VersionTLS12}}}
	res, err := post(trusting)
	if err != nil {
		t.Fatalf("POST over TLS: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || res.TLS == nil {
		t.Fatalf("POST over TLS: %d (TLS %v): %s", res.StatusCode, res.TLS != nil, body)
	}
	s.waitRows(uint64(len(evs)))
	s.checkIDs(ids(evs))
}

// TestNoSecretInLogsOrErrors runs the gateway and a publisher with a known
// token, ANI key and NATS password through successes and forced failures
// (a wrong token, a near-miss token, a wrong NATS password, a NATS outage
// with spooling) and requires that none of the secrets appears in the
// logs, in an answer or in an error text.
func TestNoSecretInLogsOrErrors(t *testing.T) {
	ls := newLockedStack(t, false, connect.NATS{}, nil)
	natsPassword := ls.password(tampaUser)
	secrets := map[string]string{
		"gateway token": gatewayToken,
		"ANI key":       string(aniKey),
		"ANI key (hex)": hex.EncodeToString(aniKey),
		"NATS password": natsPassword,
	}
	var (
		mu    sync.Mutex
		texts []string // every answer and error text seen
	)
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		texts = append(texts, s)
	}

	nc := ls.connectAs(tampaUser)
	pub := ls.publisherOn(nc)
	gw, err := gateway.New(gateway.Config{
		Tokens: map[string]gateway.Grant{gatewayToken: {Name: "tampa", System: "acd", Instance: "tampa-01"}},
		Logger: ls.log,
	}, pub)
	if err != nil {
		t.Fatalf("new gateway: %v", err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	send := func(token string, body []byte) int {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		note(string(b))
		for k, vs := range res.Header {
			note(k + ": " + strings.Join(vs, ","))
		}
		return res.StatusCode
	}
	tampa := source("acd", "tampa-01")
	ok := newEvents(tampa, 3)
	if code := send(gatewayToken, wireArray(t, ok)); code != http.StatusAccepted {
		t.Fatalf("valid events: %d", code)
	}
	for _, tok := range []string{gatewayToken + "x", gatewayToken[:len(gatewayToken)-1], "wrong-token-0123456789"} {
		if code := send(tok, wireArray(t, newEvents(tampa, 1))); code != http.StatusUnauthorized {
			t.Errorf("a wrong token: %d, want 401", code)
		}
	}
	// An event of a source the token may not use, carrying the token in a
	// field: refused, and the answer must not echo the field.
	leaky := newEvent(source("acd", "miami-01"))
	leaky.CallID = gatewayToken
	if code := send(gatewayToken, wireArray(t, []*event.Event{leaky})); code != http.StatusBadRequest {
		t.Errorf("an event of another source: %d, want 400", code)
	}

	// A wrong NATS password: the error and the logs must not carry the
	// password that was tried, nor the right one.
	badFile := filepath.Join(t.TempDir(), "bad.password")
	if err := os.WriteFile(badFile, []byte(natsPassword+"-wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets["wrong NATS password"] = natsPassword + "-wrong"
	bad, err := connect.ConnectNATS(connect.NATS{URL: ls.nats.URL, User: tampaUser, PasswordFile: badFile, Name: "e2e-bad"}, ls.log)
	if err != nil {
		note(err.Error())
	} else {
		testenv.Eventually(t, wait, func() bool { return bad.LastError() != nil }, "a wrong password raised no error")
		note(bad.LastError().Error())
		bad.Close()
	}
	// A connection whose URL holds the password logs its disconnect and
	// reconnect below with the URL redacted.
	urlConn, err := connect.ConnectNATS(connect.NATS{
		URL:  "nats://" + tampaUser + ":" + natsPassword + "@" + hostPort(ls.nats.URL),
		Name: "e2e-url-password",
	}, ls.log)
	if err != nil {
		t.Fatalf("connect with the password in the URL: %v", err)
	}
	t.Cleanup(urlConn.Close)
	testenv.Eventually(t, wait, urlConn.IsConnected, "the connection with the password in its URL never connected")

	// An outage: the publisher spools (logged) and forwards when NATS is
	// back; the connections log their disconnect and reconnect.
	ls.stopNATS(nc, urlConn)
	spooled := newEvents(tampa, 2)
	for _, ev := range spooled {
		if _, err := pub.Publish(ls.ctx(), ev); err != nil {
			note(err.Error())
		}
	}
	ls.restartNATS()
	ls.startLoaderOn(ls.connectAs(loaderUser))
	ls.waitRows(uint64(len(ok) + len(spooled)))
	testenv.Eventually(t, wait, urlConn.IsConnected, "the connection with the password in its URL never reconnected")
	out := ls.logs.String()
	for _, want := range []string{"nats reconnected", "request refused", "spool"} {
		if !strings.Contains(out, want) {
			t.Errorf("the logs lack %q: the failures were not all forced", want)
		}
	}
	mu.Lock()
	all := append([]string{out}, texts...)
	mu.Unlock()
	for name, secret := range secrets {
		for _, text := range all {
			if strings.Contains(text, secret) {
				t.Errorf("the %s appears in a log, answer or error text", name)
				break
			}
		}
	}
}

// tail is the end of a long log.
func tail(out string) string {
	if len(out) > 16<<10 {
		return "…" + out[len(out)-16<<10:]
	}
	return out
}

// errString is err's text, or "none".
func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

// TestPermissionsDocMatches: the template in deploy/nats/permissions.md is
// a valid nats-server configuration whose producer and loader permissions
// are exactly those TestNATSPermissions runs.
func TestPermissionsDocMatches(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nats", "permissions.md"))
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(doc, []byte("\nauthorization {"))
	if start < 0 {
		t.Fatal("permissions.md holds no authorization block")
	}
	end := bytes.Index(doc[start:], []byte("\n```"))
	if end < 0 {
		t.Fatal("the authorization block of permissions.md does not end")
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, doc[start:start+end+1], 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("the template is not a valid nats-server configuration: %v", err)
	}
	want := map[string]*server.Permissions{
		tampaUser:  producerPermissions("acd", "tampa-01", inboxOf(tampaUser, true)),
		loaderUser: loaderPermissions(streams.DefaultEventsStream, loader.DefaultConsumer, inboxOf(loaderUser, true)),
	}
	for _, u := range opts.Users {
		w, ok := want[u.Username]
		if !ok {
			continue
		}
		delete(want, u.Username)
		p := u.Permissions
		if p == nil || p.Publish == nil || p.Subscribe == nil {
			t.Errorf("user %s: no publish or subscribe permissions", u.Username)
			continue
		}
		for _, c := range []struct {
			what      string
			got, want []string
		}{
			{"publish allow", p.Publish.Allow, w.Publish.Allow},
			{"publish deny", p.Publish.Deny, w.Publish.Deny},
			{"subscribe allow", p.Subscribe.Allow, w.Subscribe.Allow},
			{"subscribe deny", p.Subscribe.Deny, w.Subscribe.Deny},
		} {
			if strings.Join(c.got, " ") != strings.Join(c.want, " ") {
				t.Errorf("user %s %s: document %q, test %q", u.Username, c.what, c.got, c.want)
			}
		}
	}
	for user := range want {
		t.Errorf("permissions.md has no user %s", user)
	}
}
