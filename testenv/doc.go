// Package testenv holds the test helpers of jetkit: Start(t) runs an
// embedded nats-server with JetStream for one test, StartCluster(t, n) a
// cluster, and the auth and TLS helpers (Users, NewOperator, NewTLS, ...)
// configure them; Eventually and WaitConsumerIdle wait for a condition
// with a deadline. The servers themselves are package
// github.com/jetkit/jetkit/testenv/embedded, which programs such as
// jetkit dev link without package testing; Server, Options, Cluster and
// ClusterOptions here are its types.
package testenv
