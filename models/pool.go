package models

import (
	"fmt"
	"net/url"
	"strconv"
)

// Pool sizes one process's MySQL connection pool.
type Pool struct {
	MaxOpen int // connections open at once
	MaxIdle int // connections kept open while idle
}

// DefaultPool is each replica's pool unless DATABASE_URL says otherwise.
var DefaultPool = Pool{MaxOpen: 20, MaxIdle: 10}

// poolParams are the DATABASE_URL query parameters that size the pool
// (every other parameter is passed to the driver).
var poolParams = map[string]bool{"max_open_conns": true, "max_idle_conns": true}

// PoolOf reads the pool size from a mysql:// DATABASE_URL's query, e.g.
// ?max_open_conns=10&max_idle_conns=5, so replicas × max_open_conns can be
// fitted under the server's max_connections.
func PoolOf(databaseURL string) (Pool, error) {
	p := DefaultPool
	u, err := url.Parse(databaseURL)
	if err != nil {
		return p, fmt.Errorf("DATABASE_URL: %w", err)
	}
	q := u.Query()
	for name, dst := range map[string]*int{"max_open_conns": &p.MaxOpen, "max_idle_conns": &p.MaxIdle} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return p, fmt.Errorf("DATABASE_URL: %s=%q must be a whole number from 1 to 1000", name, v)
		}
		*dst = n
	}
	if q.Get("max_idle_conns") == "" && p.MaxIdle > p.MaxOpen {
		p.MaxIdle = p.MaxOpen
	}
	if p.MaxIdle > p.MaxOpen {
		return p, fmt.Errorf("DATABASE_URL: max_idle_conns=%d exceeds max_open_conns=%d", p.MaxIdle, p.MaxOpen)
	}
	return p, nil
}
