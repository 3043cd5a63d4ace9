package resource

// SecretKey names one generated value: a key of a Secret the platform owns.
type SecretKey struct {
	Secret string
	Key    string
}

// Credentials are the generated secret values (passwords, the Erlang cookie)
// the builders need. The controller resolves them before building: the value
// already stored in the live Secret, or a new random one when the Secret does
// not exist yet. So builders stay pure, and a password is made once and never
// regenerated.
type Credentials map[SecretKey]string

// Get returns a resolved value; "" when it was not resolved (the render
// subcommand and unit tests may leave values out).
func (c Credentials) Get(secret, key string) string {
	return c[SecretKey{Secret: secret, Key: key}]
}
