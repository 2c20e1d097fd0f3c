package client

import "github.com/sharevault/sharevault/internal/tsm"

// AddServerNode adds a server node that runs in this process on its own database: for the
// package's tests only, so that it is not in the API that apps bind.
func (p *Phone) AddServerNode(dbPath string) {
	p.servers = append(p.servers, tsm.NodeConfig{Database: dbPath})
}
