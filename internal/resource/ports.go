package resource

// Components of the stateful tier (app.kubernetes.io/component values).
const (
	ComponentDatabase = "database"
	ComponentCache    = "cache"
	ComponentBroker   = "broker"
	ComponentWorker   = "worker"
)

// Ports the stateful tier listens on.
const (
	PostgresPort       int32 = 5432
	RedisPort          int32 = 6379
	RedisClusterBus    int32 = 16379
	AMQPPort           int32 = 5672
	RabbitManagement   int32 = 15672
	ErlangPortMapper   int32 = 4369
	RabbitDistribution int32 = 25672
)
