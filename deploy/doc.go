// Package deploy holds what runs airtally outside the local mode: the
// Dockerfile, the configuration of NATS, ClickHouse and Grafana for the
// docker-compose stack (docker-compose.yml at the repository root), the
// demo producer, and the production notes (README.md). Its tests check the
// compose file and the configuration files without a Docker engine: the
// compose file as compose-go loads it, the NATS configuration as
// nats-server parses it (and a server started from it), the ClickHouse
// users and the Grafana provisioning against the dashboards.
package deploy
