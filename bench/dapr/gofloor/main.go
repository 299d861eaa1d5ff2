// Command gofloor measures the floor of a grpc-go unary call, and of a net/http
// GET, on this machine.
//
//	gofloor serve PORT                                   serve grpc.health.v1.Health on 127.0.0.1:PORT
//	gofloor load PORT RATE SECONDS [CONNS]               open-loop Check calls at RATE/s, print JSON
//	gofloor serve-http PORT                              net/http server on 127.0.0.1:PORT, 204 for any path
//	gofloor load-http PORT RATE SECONDS [CONNS] [PATH]   open-loop GETs at RATE/s, print JSON
//
// grpc-go and net/http are the stacks daprd's gRPC and HTTP APIs use, so a no-op
// call served by them is the peer floor to set the Python sidecar's latency against.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gofloor serve PORT | gofloor load PORT RATE SECONDS [CONNS]\n"+
		"       gofloor serve-http PORT | gofloor load-http PORT RATE SECONDS [CONNS] [PATH]")
	os.Exit(2)
}

func serve(port int) error {
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	hs := health.NewServer() // overall service ("") reports SERVING by default
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	fmt.Println("ready")
	os.Stdout.Sync()
	return srv.Serve(lis)
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(q * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

// run starts call(i) every 1/rate s for seconds s, each in its own goroutine,
// and returns the latencies (ms) of the calls that succeeded (call returned nil),
// the error count and the time from the first start to the last completion.
func run(call func(i int) error, rate, seconds float64) ([]float64, int64, time.Duration) {
	total := int(rate * seconds)
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]float64, total)
	ok := make([]bool, total)
	var errs int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < total; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t0 := time.Now()
			err := call(i)
			el := time.Since(t0)
			if err != nil {
				if atomic.AddInt64(&errs, 1) == 1 {
					fmt.Fprintf(os.Stderr, "first failure: %v\n", err)
				}
				return
			}
			lat[i] = float64(el.Nanoseconds()) / 1e6
			ok[i] = true
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	out := make([]float64, 0, total)
	for i, v := range lat {
		if ok[i] {
			out = append(out, v)
		}
	}
	return out, errs, elapsed
}

// measure runs a 1 s unrecorded warm-up at rate, then the recorded run, and
// prints the JSON summary.
func measure(call func(i int) error, rate, seconds float64) error {
	run(call, rate, 1.0) // warm-up, not recorded
	lat, errs, elapsed := run(call, rate, seconds)
	sort.Float64s(lat)
	res := map[string]float64{
		"p50_ms": percentile(lat, 0.50),
		"p99_ms": percentile(lat, 0.99),
		"rps":    float64(len(lat)) / elapsed.Seconds(),
		"errors": float64(errs),
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

func load(port int, rate, seconds float64, conns int) error {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	clients := make([]healthpb.HealthClient, conns)
	for i := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// Each Dial is its own ClientConn, hence its own TCP connection; calls
		// are spread over them round robin.
		cc, err := grpc.DialContext(ctx, addr, grpc.WithInsecure(), grpc.WithBlock())
		cancel()
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		defer cc.Close()
		clients[i] = healthpb.NewHealthClient(cc)
	}
	req := &healthpb.HealthCheckRequest{}
	call := func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := clients[i%len(clients)].Check(ctx, req)
		if err != nil {
			return err
		}
		if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("status=%v", st)
		}
		return nil
	}
	return measure(call, rate, seconds)
}

func serveHTTP(port int) error {
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}),
	}
	fmt.Println("ready")
	os.Stdout.Sync()
	return srv.Serve(lis)
}

func loadHTTP(port int, rate, seconds float64, conns int, path string) error {
	tr := &http.Transport{
		Proxy:               nil, // loopback; ignore any *_proxy in the environment
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
	call := func(int) error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		// Drain the body so the connection goes back to the idle pool.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
	return measure(call, rate, seconds)
}

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	port, err := strconv.Atoi(os.Args[2])
	if err != nil {
		usage()
	}
	switch os.Args[1] {
	case "serve":
		err = serve(port)
	case "load", "load-http":
		if len(os.Args) < 5 {
			usage()
		}
		rate, err1 := strconv.ParseFloat(os.Args[3], 64)
		seconds, err2 := strconv.ParseFloat(os.Args[4], 64)
		conns := 16
		var err3 error
		if len(os.Args) > 5 {
			conns, err3 = strconv.Atoi(os.Args[5])
		}
		if err1 != nil || err2 != nil || err3 != nil || rate <= 0 || seconds <= 0 || conns < 1 {
			usage()
		}
		if os.Args[1] == "load" {
			err = load(port, rate, seconds, conns)
			break
		}
		path := "/v1.0/healthz"
		if len(os.Args) > 6 {
			path = os.Args[6]
		}
		if len(os.Args) > 7 {
			usage()
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		err = loadHTTP(port, rate, seconds, conns, path)
	case "serve-http":
		err = serveHTTP(port)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
}
