// Package deploy holds the files docker-compose.yml mounts (nats/ for the
// cluster nodes, prometheus.yml) and, in its tests, the validation of the
// compose file that runs in `make test` without a Docker engine: every
// service's environment variables are ones its code reads and parse as its
// configuration, build contexts and Dockerfiles exist and build a real
// command, mounted files exist, the NATS nodes' routes name exactly the
// cluster's own nodes, and the scrape and trace targets are services of
// the file.
package deploy
