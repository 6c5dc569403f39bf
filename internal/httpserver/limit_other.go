//go:build !unix

package httpserver

func defaultMaxConns() int { return maxConnsCap }
