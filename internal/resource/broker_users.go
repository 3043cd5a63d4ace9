package resource

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// The broker's users, each with what it needs and no more (docs/security.md):
//
//   - BrokerUser (Secret P-broker, read by services and workers through the
//     broker URL): configure, write and read on the Celery vhost, no tag.
//     Celery declares, publishes and consumes over AMQP only; with no tag
//     the management API refuses it, so an application's credentials cannot
//     list, purge or delete other queues, users or vhosts over HTTP.
//   - BrokerOperatorUser (Secret P-broker-users, keys operator-username and
//     operator-password, read by the operator only): the management API
//     user the operator keeps the queues in line with, with the same vhost
//     permissions. It is tagged policymaker, not administrator: the operator
//     keeps its record of the queues it declared in a global runtime
//     parameter (internal/rabbitmq: RecordParameter), which the management
//     tag may not read or write and policymaker may; users, vhosts and
//     permissions stay out of its reach (both checked
//     against a real RabbitMQ in rabbitmq_users_server_test.go).
//   - No monitoring user: nothing scrapes the broker with credentials.
//     rabbitmq_prometheus serves /metrics on 15692 without authentication
//     (the PodMonitor scrapes it there), and KEDA's trigger reads queue
//     lengths over AMQP as BrokerUser; nothing but the operator reads the
//     management API. A user tagged monitoring belongs here the day
//     something does, with its own Secret.
const (
	BrokerOperatorUser = "parser-operator"
	BrokerOperatorTag  = "policymaker"

	// KeyOperatorUsername and KeyOperatorPassword are the operator's user in
	// Secret P-broker-users; users.json (UserDefinitionsKey) sits beside them.
	KeyOperatorUsername = "operator-username"
	KeyOperatorPassword = "operator-password"

	brokerUsersName = "broker-users"
)

// BrokerUsersSecretName holds users.json, the users RabbitMQ imports at
// every boot (the broker's pods mount it), and the operator's management
// API password. It is not a data credential: users.json is derived from the
// applications' password (kept in P-broker, which is one) and the
// operator's, and RabbitMQ imports the users at every boot
// (load_definitions), so a new operator password (a lost Secret, a platform
// created again over kept volumes) takes effect when the broker's pods
// restart, which the users' hash in the pod template makes them do. Keeping
// users.json out of P-broker keeps that retained Secret unchanged when the
// operator's password is made again.
func BrokerUsersSecretName(p *platformv1.ParserPlatform) string {
	return Name(p.Name, brokerUsersName)
}

func brokerUsersSecret(p *platformv1.ParserPlatform, users, operatorPassword string) *corev1.Secret {
	return secret(p, BrokerUsersSecretName(p), brokerUsersName, ComponentBroker, map[string]string{
		UserDefinitionsKey:  users,
		KeyOperatorUsername: BrokerOperatorUser,
		KeyOperatorPassword: operatorPassword,
	})
}

// RenderUserDefinitions declares the broker's users and their rights on the
// Celery vhost. RabbitMQ skips its default user (and vhost) when
// definitions are imported at boot, so the users must be declared here; the
// vhost is declared again so the file stands on its own whatever order the
// files are imported in. An operator password left out (the render
// subcommand, unit tests) leaves the operator's user out.
func RenderUserDefinitions(password, operatorPassword string) (string, error) {
	d := definitions{
		Vhosts:      []map[string]any{{"name": RabbitVhost}},
		Users:       []map[string]any{rabbitUser(BrokerUser, password)},
		Permissions: []map[string]any{fullVhostPermissions(BrokerUser)},
	}
	if operatorPassword != "" {
		d.Users = append(d.Users, rabbitUser(BrokerOperatorUser, operatorPassword, BrokerOperatorTag))
		d.Permissions = append(d.Permissions, fullVhostPermissions(BrokerOperatorUser))
	}
	out, err := json.MarshalIndent(d, "", "  ")
	return string(out) + "\n", err
}

func rabbitUser(name, password string, tags ...string) map[string]any {
	if tags == nil {
		tags = []string{}
	}
	return map[string]any{
		"name": name, "password_hash": RabbitPasswordHash(password),
		"hashing_algorithm": "rabbit_password_hashing_sha256", "tags": tags,
	}
}

func fullVhostPermissions(user string) map[string]any {
	return map[string]any{"user": user, "vhost": RabbitVhost, "configure": ".*", "write": ".*", "read": ".*"}
}
