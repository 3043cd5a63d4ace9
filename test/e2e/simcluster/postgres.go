package simcluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"

	corev1 "k8s.io/api/core/v1"
)

// The postgres kind backs the pods whose container "postgres" runs the
// official postgres image: Debian's PostgreSQL 15 in the pod's sandbox, as
// the Debian postgres user, with the image's entrypoint emulated
// (postgresEntrypoint) so that the pod's env means what it means in the
// image: POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB initialize an
// empty PGDATA, and only an empty one.
type postgresKind struct {
	binDir, logDir string
	user           owner
}

// DefaultPostgresBinDir is where Debian's postgresql-15 has its binaries.
const DefaultPostgresBinDir = "/usr/lib/postgresql/15/bin"

func (c *Cluster) postgresBinDir() string {
	if c.opts.PostgresBinDir != "" {
		return c.opts.PostgresBinDir
	}
	return DefaultPostgresBinDir
}

func newPostgresKind(c *Cluster) (*postgresKind, error) {
	binDir := c.postgresBinDir()
	for _, bin := range []string{"postgres", "initdb", "pg_ctl", "psql", "pg_isready"} {
		if !isExecutable(filepath.Join(binDir, bin)) {
			return nil, fmt.Errorf("%s not found in %s (Debian's postgresql, hack/install-test-deps.sh; Options.NoPostgres goes without)", bin, binDir)
		}
	}
	if err := requireSandboxTools(); err != nil {
		return nil, err
	}
	u, err := systemUser("postgres")
	if err != nil {
		return nil, err
	}
	return &postgresKind{binDir: binDir, logDir: filepath.Join(c.Dir, "logs"), user: u}, nil
}

func (*postgresKind) name() string { return "postgres" }

func (*postgresKind) container(pod *corev1.Pod) *corev1.Container {
	return containerNamed(pod, "postgres", "postgres")
}

// prepare: the image's environment (PATH to the binaries, PGDATA's
// default; a UTF-8 locale this machine has), its directories
// /var/lib/postgresql and /var/run/postgresql, and the entrypoint, which
// gets the pod IP and port to listen on. The image's STOPSIGNAL is SIGINT
// (a fast shutdown).
func (k *postgresKind) prepare(_ context.Context, r *podRun) error {
	r.user, r.stopSig = k.user, syscall.SIGINT
	r.imgEnv = []string{
		"PATH=" + k.binDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8", "PGDATA=/var/lib/postgresql/data", "HOME=/var/lib/postgresql",
	}
	r.env = processEnv(r.imgEnv, r.container.Env, r.envMap)
	r.sandbox = newSandbox(r.rt, r, "/var/lib/postgresql", "/var/run/postgresql")
	port := strconv.Itoa(containerPort(r.container, "postgres", 5432))
	entrypoint := []string{"bash", "-c", postgresEntrypoint, "docker-entrypoint.sh", r.ip, port}
	r.argv = containerArgv(r.container, r.envMap, entrypoint, []string{"postgres"})
	return nil
}

func (k *postgresKind) start(ctx context.Context, r *podRun) (*process, error) {
	return startSandboxed(ctx, k, k.logDir, r)
}

func (*postgresKind) ready(ctx context.Context, r *podRun, proc *process) bool {
	return execReady(ctx, r, proc)
}

func (*postgresKind) stopped(*podRun) {}

// postgresEntrypoint is the official image's docker-entrypoint.sh, cut to
// what a pod of the operator uses: on every start PGDATA is created and
// made 0700; only when it holds no database yet, initdb with POSTGRES_USER
// as the superuser and POSTGRES_PASSWORD (through a pipe, never on a
// command line), pg_hba.conf as the image leaves it (initdb's local and
// loopback trust, then "host all all all scram-sha-256"), and the database
// POSTGRES_DB; a PGDATA that has one is used as it is (its roles keep their
// passwords, whatever the env says now). Then postgres, told to listen on
// the pod IP ($1) and port ($2): the harness's only addition.
const postgresEntrypoint = `set -Eeo pipefail
ip=$1 port=$2
shift 2
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" = postgres ]; then
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" || :
	mkdir -p /var/run/postgresql || :
	chmod 03775 /var/run/postgresql || :
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		: "${POSTGRES_USER:=postgres}"
		: "${POSTGRES_DB:=$POSTGRES_USER}"
		: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
		if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
			echo >&2 'Error: Database is uninitialized and superuser password is not specified.'
			exit 1
		fi
		initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
		printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
		pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p $port" -w start
		if [ "$POSTGRES_DB" != postgres ]; then
			psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres -p "$port" \
				--set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
		fi
		pg_ctl -D "$PGDATA" -m fast -w stop
		echo 'PostgreSQL init process complete; ready for start up.'
	else
		echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
	fi
	set -- "$@" -c listen_addresses="$ip" -p "$port"
fi
exec "$@"
`
