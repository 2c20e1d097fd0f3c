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
	"sync/atomic"
	"time"
)

// Problem types of the node API (docs/tsm-api.md, "Errors") that map to sentinels.
var problemErrors = map[string]error{
	"stale-epoch":   ErrStaleEpoch,
	"no-seeds":      ErrNoSeeds,
	"no-commitment": ErrNoCommitment,
	"no-session":    ErrNoSession,
	"node-behind":   ErrNodeBehind,
	"key-not-found": ErrKeyNotFound,
	"not-a-party":   ErrNotAParty,
	"unauthorized":  ErrUnauthorized,
	"forbidden":     ErrForbidden,
}

// ErrNodeUnreachable: a node did not answer (down, refused, timed out).
var ErrNodeUnreachable = errors.New("TSM node unreachable")

type remotePeer struct {
	url  string   // as configured: the node's URL, or its replicas' URLs joined by "|"
	urls []string // the replicas' (one for a node of one process)
	pin  NodeID   // the ID the configuration expects, or zero
	pins *node    // the phone's node, which keeps the ID first seen at each URL (nil: none)
	http *http.Client

	mu      sync.Mutex
	id      NodeID
	learned bool // id was not asked of the node by this peer (learned earlier, or assumed)

	moved atomic.Bool // a replica that did not answer was left for another (Client.Failover)
}

// replicaAt holds, for each configured URL of a node of several replicas, the replica this
// process sends to: the last one that answered, so every client of the process goes on
// with it (its sessions are in that replica's memory).
var replicaAt sync.Map // url → int

func newRemotePeer(url string, pin NodeID, client *http.Client) *remotePeer {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			ResponseHeaderTimeout: 30 * time.Second, MaxIdleConnsPerHost: 8}}
	}
	r := &remotePeer{url: url, pin: pin, http: client}
	for _, u := range strings.Split(url, "|") {
		r.urls = append(r.urls, strings.TrimSuffix(u, "/"))
	}
	r.url = strings.Join(r.urls, "|")
	return r
}

func (r *remotePeer) String() string { return r.url }

// do sends a request to the replica this process uses for the node. One that does not
// answer is left for the next, which takes this process's requests from then on; the
// request itself goes there too if it never reached the first (refused at connect), and
// is not sent twice otherwise (the first may have served it).
func (r *remotePeer) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	n := len(r.urls)
	at := 0
	if v, ok := replicaAt.Load(r.url); ok {
		at = v.(int)
	}
	for i := range n {
		b, reached, err := r.send(ctx, r.urls[(at+i)%n], method, path, body)
		if n == 1 || !errors.Is(err, ErrNodeUnreachable) || ctx.Err() != nil {
			return b, err
		}
		replicaAt.Store(r.url, (at+i+1)%n)
		r.moved.Store(true)
		if reached || i == n-1 {
			return nil, err
		}
	}
	panic("unreachable")
}

func (r *remotePeer) send(ctx context.Context, url, method, path string, body []byte) (_ []byte, reached bool, _ error) {
	req, err := http.NewRequestWithContext(ctx, method, url+path, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		var oe *net.OpError
		reached = !errors.As(err, &oe) || oe.Op != "dial"
		if ctx.Err() != nil {
			return nil, reached, fmt.Errorf("%w: %s: %v", ErrNodeUnreachable, url, ctx.Err())
		}
		return nil, reached, fmt.Errorf("%w: %s: %s", ErrNodeUnreachable, url, lastPart(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxStepBody+1))
	if err != nil {
		return nil, true, fmt.Errorf("%w: %s: %s", ErrNodeUnreachable, url, lastPart(err))
	}
	if resp.StatusCode == http.StatusOK {
		return b, true, nil
	}
	var p struct{ Type, Detail string }
	json.Unmarshal(b, &p)
	name := strings.TrimPrefix(p.Type, "urn:sharevault:tsm:problem:")
	if p.Detail == "" {
		p.Detail = http.StatusText(resp.StatusCode)
	}
	if s, ok := problemErrors[name]; ok {
		return nil, true, fmt.Errorf("%w (%s: %s)", s, url, p.Detail)
	}
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
		return nil, true, fmt.Errorf("%w: %s: %s", ErrNodeUnreachable, url, p.Detail)
	}
	return nil, true, fmt.Errorf("%s: %s", url, p.Detail)
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
	id, known := learnedID(r.url)
	if !known {
		// The ID the configuration gives, or the one the phone pinned for this URL, is taken
		// without asking (a round trip on a phone's link): every answer is verified against
		// it, and a refusal or an answer that does not verify asks the node (changed).
		id, known = r.pinned()
	}
	r.learned = known
	if !known {
		var err error
		if id, err = r.fetchID(ctx); err != nil {
			return NodeID{}, err
		}
	}
	err := r.checkPins(id)
	if err != nil && known { // learned before; the URL may serve another node now: ask
		forgetID(r.url)
		if id, err = r.fetchID(ctx); err != nil {
			return NodeID{}, err
		}
		r.learned = false
		err = r.checkPins(id)
	}
	if err != nil {
		return NodeID{}, err
	}
	r.id = id
	learnID(r.url, id)
	return id, nil
}

// pinned is the ID the configuration gives for this peer, else the one the phone pinned
// for its URL, if either is.
func (r *remotePeer) pinned() (NodeID, bool) {
	if r.pin.Sign != nil {
		return r.pin, true
	}
	if r.pins == nil {
		return NodeID{}, false
	}
	have, ok := r.pins.pinned(r.url)
	if !ok {
		return NodeID{}, false
	}
	id, err := ParseNodeID(have)
	return id, err == nil
}

// learned keeps, for this process, the node ID each URL answered with (every check above
// passed), so that an operation does not ask again: a round trip on a phone's link. The
// checks against the configuration and the phone's pins run again on every use, and every
// answer is verified against the ID all the same.
var learned = struct {
	sync.Mutex
	m map[string]NodeID
}{m: map[string]NodeID{}}

func learnedID(url string) (NodeID, bool) {
	learned.Lock()
	defer learned.Unlock()
	id, ok := learned.m[url]
	return id, ok
}

func forgetID(url string) {
	learned.Lock()
	defer learned.Unlock()
	delete(learned.m, url)
}

func learnID(url string, id NodeID) {
	learned.Lock()
	defer learned.Unlock()
	learned.m[url] = id
}

// changed, after a refusal or an answer that does not verify, asks the node its ID again if
// this peer did not ask it in this operation (another node may answer at the URL now), and
// returns the pins' one line (ErrNodeChanged) if it is another than id.
func (r *remotePeer) changed(ctx context.Context, id NodeID) error {
	r.mu.Lock()
	learned := r.learned
	r.mu.Unlock()
	if !learned {
		return nil
	}
	forgetID(r.url)
	now, err := r.fetchID(ctx)
	if err != nil || now.Equal(id) {
		return nil
	}
	if err := r.checkPins(now); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s answers as node %s, not %s", ErrNodeChanged, r.url, short(now), short(id))
}

// fetchID asks the node its ID (GET /v1/node).
func (r *remotePeer) fetchID(ctx context.Context) (NodeID, error) {
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
	return id, nil
}

// checkPins checks id against the configured ID and the phone's pin for the URL (pinning it
// if there is none, or replacing it with the configured one).
func (r *remotePeer) checkPins(id NodeID) error {
	if r.pin.Sign != nil && !r.pin.Equal(id) {
		return fmt.Errorf("%w: %s answers as node %s, not the configured %s", ErrNodeChanged, r.url, short(id), short(r.pin))
	}
	if r.pins == nil {
		return nil
	}
	var err error
	if r.pin.Sign != nil {
		err = r.pins.repin(r.url, id.String())
	} else {
		var have string
		if have, err = r.pins.pin(r.url, id.String()); err == nil && have != id.String() {
			return fmt.Errorf("%w: %s answers as node %s, not the %s this phone pinned when it first used it", ErrNodeChanged, r.url, short(id), have[:16])
		}
	}
	if err != nil {
		return fmt.Errorf("tsm: pin %s: %w", r.url, err)
	}
	return nil
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
		// A refusal the protocol's flow expects (which only the node the step is for gives,
		// past its check of the target) is answered by asking again another way, not by
		// asking the node who it is: a round trip on a phone's link. (A node refuses no
		// info of the key's owner as stale: it tells the epoch, signed.)
		flow := errors.Is(err, ErrNoCommitment) || errors.Is(err, ErrStaleEpoch) || errors.Is(err, ErrNoSeeds) || errors.Is(err, ErrNoSession)
		flow = flow && st.Op != OpInfo && st.Op != OpInfoAhead
		if !errors.Is(err, ErrNodeUnreachable) && !flow {
			if cerr := r.changed(ctx, id); cerr != nil {
				return nil, cerr
			}
		}
		return nil, err
	}
	res, err := DecodeResult(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.url, err)
	}
	if err := verifyAnswer(id, st.digest(), st.Auth, res); err != nil {
		if cerr := r.changed(ctx, id); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("%w (%s, %s)", err, r.url, st.Op)
	}
	res.vouched = id
	return res, nil
}
