package scaffolding

import (
	"fmt"
	"reflect"

	"github.com/jetkit/jetkit/framework"
)

// envVar is one environment variable a generated service reads.
type envVar struct {
	// Name without the service prefix, e.g. NATS_URL.
	Name string
	// Default is the value used when the variable is unset ("" for none).
	Default string
	// Meaning says what it configures.
	Meaning string
	// Secret marks credentials: .env.example leaves them commented out.
	Secret bool
}

// frameworkVarMeaning describes each framework.Config variable. A test
// checks it covers every field, so a new config field cannot be missed in
// generated READMEs.
var frameworkVarMeaning = map[string]string{
	"SERVICE_NAME":                 "service name: CloudEvents source and NATS client name",
	"NATS_URL":                     "NATS servers, comma separated",
	"NATS_CLIENT_NAME":             "connection name shown by the server (default: the service name)",
	"NATS_INBOX_PREFIX":            "subject root of the service's replies (default: _INBOX_<service name>)",
	"NATS_CREDS_FILE":              "JWT user credentials file (.creds)",
	"NATS_NKEY_FILE":               "NKey user seed file",
	"NATS_USER":                    "user name (with NATS_PASSWORD)",
	"NATS_PASSWORD":                "password (secret)",
	"NATS_TOKEN":                   "bearer token (secret)",
	"NATS_TLS_CA_FILE":             "PEM CA bundle verifying the server",
	"NATS_TLS_CERT_FILE":           "client certificate for mutual TLS",
	"NATS_TLS_KEY_FILE":            "client key for mutual TLS",
	"NATS_TLS_SERVER_NAME":         "name checked in the server certificate",
	"NATS_CONNECT_TIMEOUT":         "dial timeout per server",
	"NATS_RECONNECT_WAIT":          "pause between reconnect attempts",
	"NATS_MAX_RECONNECTS":          "reconnect attempts, -1 forever",
	"NATS_RETRY_ON_FAILED_CONNECT": "keep trying when no server answers at start",
	"NATS_REQUEST_TIMEOUT":         "JetStream API calls, sync publishes and acks",
	"STREAM_REPLICAS":              "replicas of the streams the service declares",
	"DEAD_LETTER_STREAM":           "stream dead-lettered messages are copied to",
	"ACK_WAIT":                     "server ack wait before redelivery",
	"MAX_DELIVER":                  "deliveries before a message is dead-lettered",
	"MAX_HANDLER_TIME":             "longest a handler may run before it is cancelled and the message retried",
	"CONCURRENCY":                  "handlers running at once per subscription",
	"ACK_MODE":                     "async or sync (wait for the server to confirm each ack)",
	"RETRY_INITIAL":                "first redelivery delay after a failure",
	"RETRY_MAX":                    "cap on the redelivery delay",
	"SHUTDOWN_TIMEOUT":             "budget for in-flight handlers at shutdown",
	"PUBLISH_ASYNC_MAX_PENDING":    "bound on un-acknowledged async publishes",
}

// ownVars are the generated main.go's own variables (type settings).
var ownVars = []envVar{
	{Name: "HTTP_ADDR", Default: ":8080", Meaning: "address of the /livez and /readyz endpoints"},
	{Name: "LOG_LEVEL", Default: "info", Meaning: "debug, info, warn or error"},
}

// serviceEnvVars lists every variable a generated service reads, in
// framework.Config field order, then the service's own. Names and defaults
// come from framework.Config's struct tags, so they cannot drift.
func serviceEnvVars(name string) ([]envVar, error) {
	var vars []envVar
	t := reflect.TypeFor[framework.Config]()
	secret := reflect.TypeFor[framework.Secret]()
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("envconfig")
		if key == "" {
			continue
		}
		meaning, ok := frameworkVarMeaning[key]
		if !ok {
			return nil, fmt.Errorf("scaffolding does not describe framework.Config.%s (%s); add it to frameworkVarMeaning", f.Name, key)
		}
		def := f.Tag.Get("default")
		if key == "SERVICE_NAME" {
			def = name
		}
		vars = append(vars, envVar{Name: key, Default: def, Meaning: meaning, Secret: f.Type == secret})
	}
	return append(vars, ownVars...), nil
}
