package chlocal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultHost           = "127.0.0.1"
	DefaultStartTimeout   = 60 * time.Second
	DefaultStopTimeout    = 20 * time.Second
	DefaultMaxQueryMemory = 2 << 30 // 2 GiB
)

// User is an extra user written into users.xml. The user "default" always
// exists, has no password and may connect from loopback addresses only;
// extra users may connect from any address the server listens on.
type User struct {
	// Name of the user: [A-Za-z_][A-Za-z0-9_.-]*, not "default".
	Name string
	// Password; stored as its SHA-256 (password_sha256_hex), never in
	// plain text. Empty means no password.
	Password string
	// ReadOnly users may read data but not write it, change settings or run
	// DDL (profile setting readonly=1).
	ReadOnly bool
	// Profile, when not nil, gives the user a settings profile of its own
	// (named "user_" + Name) instead of the shared "default" or "readonly"
	// one. ReadOnly still applies: it raises Profile.ReadOnly to at least 1.
	Profile *Profile
	// Databases, when not empty, are the only databases the user may use
	// (allow_databases); ClickHouse always lets every user read "system".
	Databases []string
}

// Profile is a user's own settings profile. ClickHouse 18.16 has no SQL
// GRANTs and no settings constraints: what a user may do is decided by its
// profile's readonly and allow_ddl settings, and a limit binds only a user
// that cannot change settings (ReadOnly 1).
type Profile struct {
	// ReadOnly is the readonly setting: 0 (default) allows everything, 1
	// allows reads only and no change of settings, 2 allows reads and
	// changes of settings.
	ReadOnly int
	// NoDDL sets allow_ddl=0: no CREATE, DROP, ALTER, RENAME or TRUNCATE,
	// while INSERT and SELECT stay allowed.
	NoDDL bool
	// MaxMemoryUsage caps one query's memory in bytes; 0 (default) means
	// Config.MaxQueryMemory.
	MaxMemoryUsage int64
	// MaxExecutionTime caps one query's run time, in whole seconds; 0
	// (default) means no limit.
	MaxExecutionTime time.Duration
	// MaxResultRows caps the rows of a result (result_overflow_mode throw);
	// 0 (default) means no limit.
	MaxResultRows uint64
	// MaxRowsToRead caps the rows one query reads (read_overflow_mode
	// throw); 0 (default) means no limit.
	MaxRowsToRead uint64
}

func (p *Profile) validate() error {
	switch {
	case p.ReadOnly < 0 || p.ReadOnly > 2:
		return fmt.Errorf("ReadOnly %d: want 0, 1 or 2", p.ReadOnly)
	case p.MaxMemoryUsage < 0:
		return fmt.Errorf("MaxMemoryUsage %d is negative", p.MaxMemoryUsage)
	case p.MaxExecutionTime < 0 || p.MaxExecutionTime%time.Second != 0:
		return fmt.Errorf("MaxExecutionTime %s: want whole seconds, not negative", p.MaxExecutionTime)
	}
	return nil
}

// settings is the profile's XML, with readOnly raised to at least min.
func (p *Profile) settings(maxMemory int64, minReadOnly int) string {
	var b strings.Builder
	mem := p.MaxMemoryUsage
	if mem == 0 {
		mem = maxMemory
	}
	fmt.Fprintf(&b, "<max_memory_usage>%d</max_memory_usage><poll_interval>1</poll_interval>", mem)
	if ro := max(p.ReadOnly, minReadOnly); ro > 0 {
		fmt.Fprintf(&b, "<readonly>%d</readonly>", ro)
	}
	if p.NoDDL {
		b.WriteString("<allow_ddl>0</allow_ddl>")
	}
	if p.MaxExecutionTime > 0 {
		fmt.Fprintf(&b, "<max_execution_time>%d</max_execution_time><timeout_overflow_mode>throw</timeout_overflow_mode>", int64(p.MaxExecutionTime/time.Second))
	}
	if p.MaxResultRows > 0 {
		fmt.Fprintf(&b, "<max_result_rows>%d</max_result_rows><result_overflow_mode>throw</result_overflow_mode>", p.MaxResultRows)
	}
	if p.MaxRowsToRead > 0 {
		fmt.Fprintf(&b, "<max_rows_to_read>%d</max_rows_to_read><read_overflow_mode>throw</read_overflow_mode>", p.MaxRowsToRead)
	}
	return b.String()
}

// Config configures a local server.
type Config struct {
	// Binary is the server executable; default FindBinary(). A binary whose
	// name is "clickhouse" is run as the multi-call "clickhouse server".
	Binary string
	// Dir holds data, temporary files, logs and the generated
	// configuration. Required; created if missing.
	Dir string
	// Host is the address the server listens on; default "127.0.0.1".
	Host string
	// TCPPort is the native protocol port; 0 (default) picks a free port.
	TCPPort int
	// HTTPPort is the HTTP port; 0 (default) picks a free port.
	HTTPPort int
	// Users are extra users besides "default".
	Users []User
	// MaxQueryMemory caps the memory of one query, in bytes; default 2 GiB.
	MaxQueryMemory int64
	// StartTimeout bounds how long Start and Restart wait for the server to
	// answer a ping (the context may shorten it); default 60 s.
	StartTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before it sends
	// SIGKILL (the context may shorten it); default 20 s.
	StopTimeout time.Duration
	// Logger receives start/stop messages; nil discards them.
	Logger *slog.Logger
	// Replica, when not nil, makes the server one replica of a replicated
	// cluster: ZooKeeper, the {shard} and {replica} macros, the cluster in
	// remote_servers and distributed DDL (ON CLUSTER). Nil (default) is a
	// standalone server.
	Replica *Replica
	// TLS, when not nil, adds the native protocol over TLS on its own port.
	TLS *TLS
}

// Replica makes a server one replica of a cluster of one shard whose
// replicas all hold every row (internal_replication: a replicated table
// copies each insert to the other replicas through ZooKeeper).
type Replica struct {
	// Cluster is the cluster's name, as ON CLUSTER and remote_servers
	// write it: [A-Za-z_][A-Za-z0-9_]*.
	Cluster string
	// Shard and Name are the {shard} and {replica} macros. Name must
	// differ between the replicas.
	Shard, Name string
	// ZooKeeper are the coordination service's "host:port"s (one or more).
	ZooKeeper []string
	// ZooKeeperRoot, optional, is a chroot under which every znode of this
	// cluster lives (e.g. "/airtally"), so that clusters can share one
	// ZooKeeper. It must exist (ClickHouse does not create it).
	ZooKeeperRoot string
	// Replicas are the native "host:port" of every replica, this server's
	// included (as Host and TCPPort, which must then be set, not 0).
	Replicas []string
	// InterserverPort is the port other replicas fetch parts from; 0
	// (default) picks a free one.
	InterserverPort int
}

// TLS serves the native protocol over TLS (tcp_port_secure) besides the
// plain port, which stays for loopback use.
type TLS struct {
	// CertFile and KeyFile are PEM files: the server's certificate (chain)
	// and its private key. Required.
	CertFile, KeyFile string
	// Port is the TLS native port; 0 (default) picks a free one.
	Port int
}

var (
	userNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	dbNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	shardRE    = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

func (c *Config) setDefaults() {
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.MaxQueryMemory == 0 {
		c.MaxQueryMemory = DefaultMaxQueryMemory
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field. It does not look for the
// binary (Start does).
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("chlocal: Dir is required")
	}
	for name, p := range map[string]int{"TCPPort": c.TCPPort, "HTTPPort": c.HTTPPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("chlocal: %s %d out of range 0-65535", name, p)
		}
	}
	if c.TCPPort != 0 && c.TCPPort == c.HTTPPort {
		return fmt.Errorf("chlocal: TCPPort and HTTPPort are both %d", c.TCPPort)
	}
	if c.MaxQueryMemory < 0 {
		return fmt.Errorf("chlocal: MaxQueryMemory %d is negative", c.MaxQueryMemory)
	}
	if c.StartTimeout < 0 || c.StopTimeout < 0 {
		return errors.New("chlocal: StartTimeout and StopTimeout must not be negative")
	}
	if r := c.Replica; r != nil {
		if err := r.validate(c); err != nil {
			return err
		}
	}
	if t := c.TLS; t != nil {
		switch {
		case t.CertFile == "" || t.KeyFile == "":
			return errors.New("chlocal: TLS.CertFile and TLS.KeyFile are required")
		case t.Port < 0 || t.Port > 65535:
			return fmt.Errorf("chlocal: TLS.Port %d out of range 0-65535", t.Port)
		case t.Port != 0 && (t.Port == c.TCPPort || t.Port == c.HTTPPort):
			return fmt.Errorf("chlocal: TLS.Port %d is also TCPPort or HTTPPort", t.Port)
		}
	}
	seen := map[string]bool{"default": true}
	for i, u := range c.Users {
		if !userNameRE.MatchString(u.Name) {
			return fmt.Errorf("chlocal: Users[%d].Name %q: want [A-Za-z_][A-Za-z0-9_.-]*", i, u.Name)
		}
		if seen[u.Name] {
			return fmt.Errorf("chlocal: Users[%d].Name %q: duplicate or reserved", i, u.Name)
		}
		seen[u.Name] = true
		if u.Profile != nil {
			if err := u.Profile.validate(); err != nil {
				return fmt.Errorf("chlocal: Users[%d] (%s).Profile: %w", i, u.Name, err)
			}
		}
		for j, db := range u.Databases {
			if !dbNameRE.MatchString(db) {
				return fmt.Errorf("chlocal: Users[%d] (%s).Databases[%d] %q: want [A-Za-z_][A-Za-z0-9_]*", i, u.Name, j, db)
			}
		}
	}
	return nil
}

func (r *Replica) validate(c *Config) error {
	switch {
	case !dbNameRE.MatchString(r.Cluster):
		return fmt.Errorf("chlocal: Replica.Cluster %q: want [A-Za-z_][A-Za-z0-9_]*", r.Cluster)
	case !shardRE.MatchString(r.Shard):
		return fmt.Errorf("chlocal: Replica.Shard %q: want letters, digits and _", r.Shard)
	case !userNameRE.MatchString(r.Name):
		return fmt.Errorf("chlocal: Replica.Name %q: want [A-Za-z_][A-Za-z0-9_.-]*", r.Name)
	case len(r.ZooKeeper) == 0:
		return errors.New("chlocal: Replica.ZooKeeper: at least one host:port is required")
	case r.ZooKeeperRoot != "" && (!strings.HasPrefix(r.ZooKeeperRoot, "/") || strings.HasSuffix(r.ZooKeeperRoot, "/")):
		return fmt.Errorf("chlocal: Replica.ZooKeeperRoot %q: want /path without a trailing /", r.ZooKeeperRoot)
	case c.TCPPort == 0:
		return errors.New("chlocal: Replica needs a fixed TCPPort (the other replicas must know it)")
	case r.InterserverPort < 0 || r.InterserverPort > 65535:
		return fmt.Errorf("chlocal: Replica.InterserverPort %d out of range 0-65535", r.InterserverPort)
	}
	for i, list := range [][]string{r.ZooKeeper, r.Replicas} {
		field := [...]string{"ZooKeeper", "Replicas"}[i]
		for _, hp := range list {
			if _, port, err := net.SplitHostPort(hp); err != nil || port == "" {
				return fmt.Errorf("chlocal: Replica.%s %q: want host:port", field, hp)
			}
		}
	}
	self := net.JoinHostPort(c.Host, strconv.Itoa(c.TCPPort))
	if !slices.Contains(r.Replicas, self) {
		return fmt.Errorf("chlocal: Replica.Replicas %v must include this server, %s", r.Replicas, self)
	}
	return nil
}

// paths of the files and folders under Config.Dir.
type paths struct {
	dir, data, tmp, userFiles, formatSchemas, logs, conf string
}

func newPaths(dir string) paths {
	return paths{
		dir:           dir,
		data:          filepath.Join(dir, "data"),
		tmp:           filepath.Join(dir, "tmp"),
		userFiles:     filepath.Join(dir, "user_files"),
		formatSchemas: filepath.Join(dir, "format_schemas"),
		logs:          filepath.Join(dir, "log"),
		conf:          filepath.Join(dir, "config"),
	}
}

func (p paths) configFile() string { return filepath.Join(p.conf, "config.xml") }
func (p paths) usersFile() string  { return filepath.Join(p.conf, "users.xml") }
func (p paths) serverLog() string  { return filepath.Join(p.logs, "clickhouse-server.log") }
func (p paths) errorLog() string   { return filepath.Join(p.logs, "clickhouse-server.err.log") }
func (p paths) stdLog() string     { return filepath.Join(p.logs, "stdout-stderr.log") }

func (p paths) mkdirs() error {
	for _, d := range []string{p.data, p.tmp, p.userFiles, p.formatSchemas, p.logs, p.conf} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("chlocal: create %s: %w", d, err)
		}
	}
	return nil
}

// writeConfig writes config.xml and users.xml for cfg (ports resolved).
func writeConfig(p paths, cfg *Config) error {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("<yandex>\n")
	w("  <logger>\n    <level>warning</level>\n    <log>%s</log>\n    <errorlog>%s</errorlog>\n    <size>10M</size>\n    <count>3</count>\n  </logger>\n",
		esc(p.serverLog()), esc(p.errorLog()))
	w("  <listen_host>%s</listen_host>\n", esc(cfg.Host))
	w("  <tcp_port>%d</tcp_port>\n  <http_port>%d</http_port>\n", cfg.TCPPort, cfg.HTTPPort)
	w("  <path>%s/</path>\n  <tmp_path>%s/</tmp_path>\n", esc(p.data), esc(p.tmp))
	w("  <user_files_path>%s/</user_files_path>\n  <format_schema_path>%s/</format_schema_path>\n", esc(p.userFiles), esc(p.formatSchemas))
	w("  <users_config>%s</users_config>\n", esc(p.usersFile()))
	w("  <default_profile>default</default_profile>\n  <default_database>default</default_database>\n")
	w("  <timezone>UTC</timezone>\n")
	// Small caches: several servers may share a 2-core machine in tests.
	w("  <mark_cache_size>67108864</mark_cache_size>\n  <uncompressed_cache_size>67108864</uncompressed_cache_size>\n")
	w("  <max_concurrent_queries>64</max_concurrent_queries>\n")
	w("  <mlock_executable>false</mlock_executable>\n")
	// Seconds a stopping server waits for running queries (default 5).
	w("  <shutdown_wait_unfinished>3</shutdown_wait_unfinished>\n")
	if t := cfg.TLS; t != nil {
		w("  <tcp_port_secure>%d</tcp_port_secure>\n", t.Port)
		w("  <openSSL><server><certificateFile>%s</certificateFile><privateKeyFile>%s</privateKeyFile>", esc(t.CertFile), esc(t.KeyFile))
		w("<verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile><cacheSessions>true</cacheSessions>")
		w("<disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols><preferServerCiphers>true</preferServerCiphers></server></openSSL>\n")
	}
	if r := cfg.Replica; r != nil {
		w("  <interserver_http_host>%s</interserver_http_host>\n  <interserver_http_port>%d</interserver_http_port>\n", esc(cfg.Host), r.InterserverPort)
		w("  <zookeeper>\n")
		for _, hp := range r.ZooKeeper {
			host, port, _ := net.SplitHostPort(hp) // validated
			w("    <node><host>%s</host><port>%s</port></node>\n", esc(host), esc(port))
		}
		if r.ZooKeeperRoot != "" {
			w("    <root>%s</root>\n", esc(r.ZooKeeperRoot))
		}
		w("    <session_timeout_ms>10000</session_timeout_ms>\n  </zookeeper>\n")
		w("  <macros><shard>%s</shard><replica>%s</replica></macros>\n", esc(r.Shard), esc(r.Name))
		w("  <remote_servers><%s><shard><internal_replication>true</internal_replication>\n", r.Cluster)
		for _, hp := range r.Replicas {
			host, port, _ := net.SplitHostPort(hp)
			w("    <replica><host>%s</host><port>%s</port></replica>\n", esc(host), esc(port))
		}
		w("  </shard></%s></remote_servers>\n", r.Cluster)
		w("  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\n")
	}
	w("</yandex>\n")
	if err := os.WriteFile(p.configFile(), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("chlocal: write config: %w", err)
	}

	b.Reset()
	mem := strconv.FormatInt(cfg.MaxQueryMemory, 10)
	w("<yandex>\n  <profiles>\n")
	// poll_interval: an idle connection's handler notices a shutdown only
	// when its poll wakes (default every 10 s), which made Stop take 10 s
	// while a client pool was open.
	w("    <default><max_memory_usage>%s</max_memory_usage><poll_interval>1</poll_interval></default>\n", mem)
	w("    <readonly><max_memory_usage>%s</max_memory_usage><readonly>1</readonly></readonly>\n", mem)
	for _, u := range cfg.Users {
		if u.Profile != nil {
			minRO := 0
			if u.ReadOnly {
				minRO = 1
			}
			w("    <user_%s>%s</user_%s>\n", u.Name, u.Profile.settings(cfg.MaxQueryMemory, minRO), u.Name)
		}
	}
	w("  </profiles>\n  <users>\n")
	w("    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default>\n")
	for _, u := range cfg.Users {
		profile := "default"
		switch {
		case u.Profile != nil:
			profile = "user_" + u.Name
		case u.ReadOnly:
			profile = "readonly"
		}
		pw := "<password></password>"
		if u.Password != "" {
			sum := sha256.Sum256([]byte(u.Password))
			pw = "<password_sha256_hex>" + hex.EncodeToString(sum[:]) + "</password_sha256_hex>"
		}
		dbs := ""
		if len(u.Databases) > 0 {
			dbs = "<allow_databases><database>" + strings.Join(u.Databases, "</database><database>") + "</database></allow_databases>"
		}
		w("    <%s>%s<networks><ip>::/0</ip></networks><profile>%s</profile><quota>default</quota>%s</%s>\n", u.Name, pw, profile, dbs, u.Name)
	}
	w("  </users>\n")
	w("  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>\n")
	w("</yandex>\n")
	if err := os.WriteFile(p.usersFile(), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("chlocal: write users: %w", err)
	}
	return nil
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder never fails
	return b.String()
}
