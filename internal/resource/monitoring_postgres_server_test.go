package resource

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vkparser/parser-operator/internal/backup/pgtest"
)

// TestMonitoringRoleHookOnRealServer runs the shard's postStart hook, as
// the pod would, against a real PostgreSQL over its Unix socket, twice (every
// start runs it): the role exists once, logs in, has pg_monitor and nothing
// more (no superuser, no password, cannot create tables), and can read the
// statistics postgres_exporter collects.
func TestMonitoringRoleHookOnRealServer(t *testing.T) {
	srv := pgtest.Start(t)
	socketDir := socketDirOf(t, srv)
	script := monitoringRoleHook().PostStart.Exec.Command[2]
	if !strings.Contains(script, "-h "+postgresSocketDir+" ") {
		t.Fatalf("the hook does not use the pod's socket directory %s:\n%s", postgresSocketDir, script)
	}
	script = strings.ReplaceAll(script, "-h "+postgresSocketDir+" ", "-h "+socketDir+" -p "+itoa(int32(srv.Port))+" ")
	for range 2 {
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "POSTGRES_USER=postgres", "POSTGRES_DB=postgres", "PATH="+srv.BinDir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Fatalf("the hook: %v\n%s", err, out)
		}
	}
	got := srv.SQL(t, "postgres", `SELECT count(*), bool_and(rolcanlogin), bool_or(rolsuper), bool_or(rolpassword IS NOT NULL),
		bool_and(pg_has_role(rolname, 'pg_monitor', 'MEMBER')) FROM pg_authid WHERE rolname = '`+MonitoringRole+`'`)
	if strings.TrimSpace(got) != "1|t|f|f|t" {
		t.Errorf("role %s (count|login|superuser|password|pg_monitor) = %q, want 1|t|f|f|t", MonitoringRole, got)
	}
	asMonitor := func(sql string) (string, error) {
		cmd := exec.Command(srv.Bin("psql"), "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", socketDir, "-p", itoa(int32(srv.Port)), "-U", MonitoringRole, "-d", "postgres", "-c", sql)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := asMonitor(`SELECT count(*) > 0 FROM pg_stat_activity WHERE query IS NOT NULL; SELECT pg_database_size('postgres') > 0`); err != nil || out != "t\nt\n" {
		t.Errorf("the monitoring role cannot read the statistics: %v %q", err, out)
	}
	if out, err := asMonitor(`CREATE TABLE monitored (id int)`); err == nil {
		t.Errorf("the monitoring role could create a table: %q", out)
	}
}

// socketDirOf is where the test server puts its socket (pgtest's -k).
func socketDirOf(t *testing.T, srv *pgtest.Server) string {
	out := strings.TrimSpace(srv.SQL(t, "postgres", "SHOW unix_socket_directories"))
	return strings.Split(out, ",")[0]
}
