package tsm

// A remote node, reached over HTTP (docs/tsm-api.md): the Peer a client uses for a node
// configured by URL. Every step it sends carries an Auth made by the client's embedded
// node (coordinator.go), and the answer's errors come back as the sentinels they were.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Problem types of the node API (docs/tsm-api.md, "Errors") that map to sentinels.
var problemErrors = map[string]error{
	"stale-epoch":   ErrStaleEpoch,
	"no-seeds":      ErrNoSeeds,
	"no-commitment": ErrNoCommitment,
	"key-not-found": ErrKeyNotFound,
	"not-a-party":   ErrNotAParty,
	"unauthorized":  ErrUnauthorized,
	"forbidden":     ErrForbidden,
}

// ErrNodeUnreachable: a node did not answer (down, refused, timed out).
var ErrNodeUnreachable = errors.New("TSM node unreachable")

type remotePeer struct {
	url  string
	pin  NodeID // the ID the configuration expects, or zero
	pins *node  // the phone's node, which keeps the ID first seen at each URL (nil: none)
	http *http.Client

	mu sync.Mutex
	id NodeID
}

func newRemotePeer(url string, pin NodeID, client *http.Client) *remotePeer {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			ResponseHeaderTimeout: 30 * time.Second, MaxIdleConnsPerHost: 8}}
	}
	return &remotePeer{url: strings.TrimSuffix(url, "/"), pin: pin, http: client}
}

func (r *remotePeer) String() string { return r.url }

func (r *remotePeer) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNodeUnreachable, r.url, ctx.Err())
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrNodeUnreachable, r.url, lastPart(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxStepBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrNodeUnreachable, r.url, lastPart(err))
	}
	if resp.StatusCode == http.StatusOK {
		return b, nil
	}
	var p struct{ Type, Detail string }
	json.Unmarshal(b, &p)
	name := strings.TrimPrefix(p.Type, "urn:sharevault:tsm:problem:")
	if p.Detail == "" {
		p.Detail = http.StatusText(resp.StatusCode)
	}
	if s, ok := problemErrors[name]; ok {
		return nil, fmt.Errorf("%w (%s: %s)", s, r.url, p.Detail)
	}
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
		return nil, fmt.Errorf("%w: %s: %s", ErrNodeUnreachable, r.url, p.Detail)
	}
	return nil, fmt.Errorf("%s: %s", r.url, p.Detail)
}

// lastPart keeps the end of a network error: "connection refused", not the whole URL.
func lastPart(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// ID asks the node for its identity once (GET /v1/node) and checks it: against the ID
// the configuration gives, if it does, and against the one the phone pinned for this URL
// when it first reached it (pinning it now if there is none, or replacing it with the
// configured one).
func (r *remotePeer) ID(ctx context.Context) (NodeID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.id.Sign != nil {
		return r.id, nil
	}
	b, err := r.do(ctx, "GET", "/v1/node", nil)
	if err != nil {
		return NodeID{}, err
	}
	var j struct {
		NodeID string `json:"node_id"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return NodeID{}, fmt.Errorf("%s: not a TSM node", r.url)
	}
	id, err := ParseNodeID(j.NodeID)
	if err != nil {
		return NodeID{}, fmt.Errorf("%s: %w", r.url, err)
	}
	if r.pin.Sign != nil && !r.pin.Equal(id) {
		return NodeID{}, fmt.Errorf("%w: %s answers as node %s, not the configured %s", ErrNodeChanged, r.url, short(id), short(r.pin))
	}
	if r.pins != nil {
		if r.pin.Sign != nil {
			err = r.pins.repin(r.url, id.String())
		} else {
			var have string
			if have, err = r.pins.pin(r.url, id.String()); err == nil && have != id.String() {
				return NodeID{}, fmt.Errorf("%w: %s answers as node %s, not the %s this phone pinned when it first used it", ErrNodeChanged, r.url, short(id), have[:16])
			}
		}
		if err != nil {
			return NodeID{}, fmt.Errorf("tsm: pin %s: %w", r.url, err)
		}
	}
	r.id = id
	return id, nil
}

// ErrNodeChanged: a server node's URL answers with another node ID than the one configured
// or pinned. Whoever answers there is not the node the phone's keys were made with.
var ErrNodeChanged = errors.New("TSM node identity changed")

// short is the first 16 hex digits of a node ID, enough to tell nodes apart in a message.
func short(id NodeID) string { return id.String()[:16] }

// Step sends one step (POST /v1/step) and checks that the answer is the node's own, for
// this request: signed by the node ID the coordinator reached (ID), over st and the answer.
func (r *remotePeer) Step(ctx context.Context, st *Step) (*StepResult, error) {
	if st.Auth == nil {
		return nil, errors.New("tsm: a step to a remote node needs its authorization")
	}
	r.mu.Lock()
	id := r.id
	r.mu.Unlock()
	if id.Sign == nil {
		return nil, errors.New("tsm: a remote node's ID is asked before its steps")
	}
	body, err := EncodeStep(st)
	if err != nil {
		return nil, err
	}
	b, err := r.do(ctx, "POST", "/v1/step", body)
	if err != nil {
		return nil, err
	}
	res, err := DecodeResult(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.url, err)
	}
	if err := verifyAnswer(id, st.digest(), st.Auth, res); err != nil {
		return nil, fmt.Errorf("%w (%s, %s)", err, r.url, st.Op)
	}
	return res, nil
}
