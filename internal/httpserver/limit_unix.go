//go:build unix

package httpserver

import "syscall"

// defaultMaxConns is half the soft open-files limit (the rest is for NATS
// connections, files and the other servers), at most maxConnsCap and at
// least 16.
func defaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return maxConnsCap
	}
	return int(max(16, min(maxConnsCap, rl.Cur/2)))
}
