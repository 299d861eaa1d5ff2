// Command gofloor measures the floor of a grpc-go unary call on this machine.
//
//	gofloor serve PORT                      serve grpc.health.v1.Health on 127.0.0.1:PORT
//	gofloor load PORT RATE SECONDS [CONNS]  open-loop Check calls at RATE/s, print JSON
//
// grpc-go is the gRPC stack daprd uses, so a no-op health Check served by it is
// the peer floor to set the Python sidecar's gRPC latency against.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gofloor serve PORT | gofloor load PORT RATE SECONDS [CONNS]")
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

// run starts one call every 1/rate s for seconds s, each in its own goroutine,
// and returns the latencies (ms) of the calls that succeeded, the error count and
// the time from the first start to the last completion.
func run(clients []healthpb.HealthClient, rate, seconds float64) ([]float64, int64, time.Duration) {
	total := int(rate * seconds)
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]float64, total)
	ok := make([]bool, total)
	var errs int64
	var wg sync.WaitGroup
	req := &healthpb.HealthCheckRequest{}
	start := time.Now()
	for i := 0; i < total; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := clients[i%len(clients)]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			t0 := time.Now()
			resp, err := c.Check(ctx, req)
			el := time.Since(t0)
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				if atomic.AddInt64(&errs, 1) == 1 {
					fmt.Fprintf(os.Stderr, "first failure: err=%v status=%v\n", err, resp.GetStatus())
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
	run(clients, rate, 1.0) // warm-up, not recorded
	lat, errs, elapsed := run(clients, rate, seconds)
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
	case "load":
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
		err = load(port, rate, seconds, conns)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
}
