package rtbtest

import (
	"math/rand/v2"
	"slices"
)

// RandomFaults makes a share of the requests to some endpoints misbehave,
// drawn from a seeded source so a failing run can be repeated. A fault set
// with SetFault takes precedence. The faults are the ones SetFault already
// plays (the API page's error answers, status codes, hangs), only drawn at
// random: nothing the service would refuse is accepted.
type RandomFaults struct {
	Seed      uint64
	Rate      float64    // share of requests that misbehave, 0 to 1
	Endpoints []Endpoint // nil means submit and status
	Faults    []Fault    // drawn uniformly (Count is ignored)
}

type randomFaults struct {
	cfg RandomFaults
	rnd *rand.Rand
	n   int
}

// SetRandomFaults starts (or, with Rate 0, stops) random faults; the count
// of RandomFaultCount starts again from zero.
func (s *Server) SetRandomFaults(f RandomFaults) {
	if f.Endpoints == nil {
		f.Endpoints = []Endpoint{EndpointSubmit, EndpointStatus}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.random = &randomFaults{cfg: f, rnd: rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))}
}

// RandomFaultCount is how many requests RandomFaults made misbehave.
func (s *Server) RandomFaultCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.random == nil {
		return 0
	}
	return s.random.n
}

// drawRandomLocked returns the random fault for one request to ep, or nil.
// Callers hold s.mu.
func (s *Server) drawRandomLocked(ep Endpoint) *Fault {
	rf := s.random
	if rf == nil || rf.cfg.Rate <= 0 || len(rf.cfg.Faults) == 0 {
		return nil
	}
	if !slices.Contains(rf.cfg.Endpoints, ep) || rf.rnd.Float64() >= rf.cfg.Rate {
		return nil
	}
	rf.n++
	f := rf.cfg.Faults[rf.rnd.IntN(len(rf.cfg.Faults))]
	return &f
}
