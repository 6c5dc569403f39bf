// Package svcenv helps programs that know their own name load a
// framework.Config, which requires PREFIX_SERVICE_NAME.
package svcenv

import (
	"os"
	"strings"
)

// DefaultServiceName sets PREFIX_SERVICE_NAME to name unless it is set,
// so that framework.LoadConfig(prefix) names the program; an explicit
// variable still wins. Call the returned func once the configuration is
// loaded to restore the environment.
//
//	restore := svcenv.DefaultServiceName("ORDER", "order")
//	cfg, err := framework.LoadConfig("ORDER")
//	restore()
func DefaultServiceName(prefix, name string) (restore func()) {
	key := strings.ToUpper(prefix) + "_SERVICE_NAME"
	if _, set := os.LookupEnv(key); set {
		return func() {}
	}
	_ = os.Setenv(key, name) // fails only for an invalid key, which LoadConfig reports
	return func() { _ = os.Unsetenv(key) }
}
