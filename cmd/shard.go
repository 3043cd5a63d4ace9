package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/sharding"
)

// shardUsage is the whole help of `parser-operator shard`. It is written by
// hand rather than by flag.PrintDefaults because the flags come in two
// one-of groups that PrintDefaults cannot show; TestShardUsageNamesEveryFlag
// keeps it in step with the FlagSet.
const shardUsage = `Usage: parser-operator shard (--shards N | --shard-map FILE | --platform NAME [--namespace NS] [--kubeconfig PATH])
                             (--user ID | --group ID | --key KEY)

Prints the database shard that holds a key, routed exactly as the platform's
services route it: the md5 digest of the key, read as a 128-bit number,
modulo the number of shards.

Where the shards come from, one of:
  --shards N            N shards (1 or more); hosts and databases are not known
  --shard-map FILE      a shard map file (shards.json, as in ConfigMap <platform>-shard-map)
  --platform NAME       ConfigMap NAME-shard-map of a running platform, read from the cluster
    --namespace NS      the platform's namespace (default: the kubeconfig context's)
    --kubeconfig PATH   kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)

The key, one of:
  --user ID             a VK user: key user_<ID> (ID a decimal integer)
  --group ID            a VK group: key group_<ID>
  --key KEY             any key, hashed as its UTF-8 bytes

Examples:
  parser-operator shard --shards 4 --user 42
  parser-operator shard --platform vk --namespace parser --group 1001
  parser-operator shard --shard-map shards.json --key user_42

Exit status: 0 when the shard was found, 1 when the shard map could not be
read, 2 for wrong flags.
`

// shardRequestTimeout bounds the one API call of --platform, so an
// unreachable cluster gives an error instead of a hang.
const shardRequestTimeout = 30 * time.Second

// shardOptions are the parsed flags of `parser-operator shard`.
type shardOptions struct {
	shards     int
	shardMap   string
	platform   string
	namespace  string
	kubeconfig string
	user       int64
	group      int64
	key        string
	set        map[string]bool // flags given on the command line, even as ""
}

// runShard is `parser-operator shard`: it answers which database shard holds
// a key, so an operator on call can find a user's rows without reading code.
// It returns the process exit status.
func runShard(args []string, stdout, stderr io.Writer) int {
	o, err := parseShardFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = fmt.Fprint(stdout, shardUsage)
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "parser-operator shard: %v\nRun 'parser-operator shard --help' for usage.\n", err)
		return 2
	}
	key := o.routingKey()
	if o.set["shards"] {
		_, _ = fmt.Fprintf(stdout, "%s -> shard %d of %d\n", displayKey(key), sharding.ShardFor(key, o.shards), o.shards)
		return 0
	}
	m, err := o.loadMap()
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "parser-operator shard: %v\n", err)
		return 1
	}
	s := m.ShardFor(key)
	_, _ = fmt.Fprintf(stdout, "%s -> shard %d of %d (host %s, database %s)\n",
		displayKey(key), s.Index, len(m.Shards), s.Host, s.Database)
	return 0
}

// newShardFlagSet defines the flags into o; its output is discarded because
// runShard prints its own usage and errors.
func newShardFlagSet(o *shardOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("parser-operator shard", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.IntVar(&o.shards, "shards", 0, "number of shards")
	fs.StringVar(&o.shardMap, "shard-map", "", "shard map file")
	fs.StringVar(&o.platform, "platform", "", "ParserPlatform name")
	fs.StringVar(&o.namespace, "namespace", "", "ParserPlatform namespace")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file")
	fs.Var((*decimalID)(&o.user), "user", "VK user id")
	fs.Var((*decimalID)(&o.group), "group", "VK group id")
	fs.StringVar(&o.key, "key", "", "raw key")
	return fs
}

func parseShardFlags(args []string) (*shardOptions, error) {
	o := &shardOptions{set: map[string]bool{}}
	fs := newShardFlagSet(o)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: values go after their flag (--user, --group, --key, ...)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, o.validate()
}

func (o *shardOptions) validate() error {
	if err := exactlyOne(o.set, "the shards", "shards", "shard-map", "platform"); err != nil {
		return err
	}
	if err := exactlyOne(o.set, "the key", "user", "group", "key"); err != nil {
		return err
	}
	for _, f := range []string{"namespace", "kubeconfig"} {
		if o.set[f] && !o.set["platform"] {
			return fmt.Errorf("--%s applies only with --platform", f)
		}
	}
	switch {
	case o.set["shards"] && o.shards < 1:
		return fmt.Errorf("--shards must be at least 1, got %d", o.shards)
	case o.set["shard-map"] && o.shardMap == "":
		return errors.New("--shard-map needs a file name")
	case o.set["platform"] && o.platform == "":
		return errors.New("--platform needs the ParserPlatform's name")
	case o.set["namespace"] && o.namespace == "":
		return errors.New("--namespace must not be empty (leave it out for the kubeconfig context's)")
	}
	return nil
}

// exactlyOne names the flags of a one-of group when none or several are set.
func exactlyOne(set map[string]bool, what string, names ...string) error {
	var given []string
	for _, n := range names {
		if set[n] {
			given = append(given, "--"+n)
		}
	}
	switch len(given) {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("missing %s: give one of --%s", what, strings.Join(names, ", --"))
	default:
		return fmt.Errorf("%s exclude each other: give one", strings.Join(given, " and "))
	}
}

func (o *shardOptions) routingKey() string {
	switch {
	case o.set["user"]:
		return sharding.UserKey(o.user)
	case o.set["group"]:
		return sharding.GroupKey(o.group)
	}
	return o.key
}

func (o *shardOptions) loadMap() (*sharding.Map, error) {
	if o.set["shard-map"] {
		data, err := os.ReadFile(o.shardMap) //nolint:gosec // G703: the caller's own --shard-map flag, read with the caller's rights.
		if err != nil {
			return nil, fmt.Errorf("--shard-map: %w", err)
		}
		m, err := sharding.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("--shard-map %s: %w", o.shardMap, err)
		}
		return m, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), shardRequestTimeout)
	defer cancel()
	return liveShardMap(ctx, o.kubeconfig, o.namespace, o.platform)
}

// liveShardMap reads the shard map the operator wrote for a platform. The
// ConfigMap name comes from the operator's own naming helper, so platforms
// with names long enough to be shortened are found too.
func liveShardMap(ctx context.Context, kubeconfig, namespace, platform string) (*sharding.Map, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	if namespace == "" {
		if namespace, _, err = cc.Namespace(); err != nil {
			return nil, fmt.Errorf("finding the namespace (give --namespace): %w", err)
		}
	}
	cfg.Timeout = shardRequestTimeout
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the API client: %w", err)
	}
	name := resource.Name(platform, sharding.ConfigMapSuffix)
	cm, err := client.ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("ConfigMap %s/%s not found: is ParserPlatform %q in namespace %q, and has the operator reconciled it?",
			namespace, name, platform, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, name, err)
	}
	data, ok := cm.Data[sharding.ConfigMapKey]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s/%s has no key %s", namespace, name, sharding.ConfigMapKey)
	}
	m, err := sharding.Parse([]byte(data))
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: %w", namespace, name, err)
	}
	return m, nil
}

// decimalID reads an id in base 10 only. flag.Int64 would take "042" as octal
// 34 and accept "0x2a", routing a different user than the one asked for;
// Python's int("042") is 42, and so is this.
type decimalID int64

func (d *decimalID) String() string { return strconv.FormatInt(int64(*d), 10) }

func (d *decimalID) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want a decimal integer id: %w", errors.Unwrap(err))
	}
	*d = decimalID(n)
	return nil
}

// displayKey prints a key as is when that is unambiguous, and quoted when it
// is empty or holds spaces, quotes, invalid UTF-8 or unprintable characters.
func displayKey(key string) string {
	odd := func(r rune) bool { return !strconv.IsPrint(r) || unicode.IsSpace(r) || r == '"' }
	if key == "" || !utf8.ValidString(key) || strings.ContainsFunc(key, odd) {
		return strconv.Quote(key)
	}
	return key
}
