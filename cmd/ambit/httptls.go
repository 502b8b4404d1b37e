package main

import (
	"crypto/tls"
	"fmt"
	"net"
)

// httpsListener puts TLS on the HTTP listener when the server has a
// certificate (--tls-cert, --tls-key): then /metrics, /healthz, /readyz,
// the profiler and the AuthZEN API are served over HTTPS with the gRPC
// port's certificate, and a plain-HTTP request gets 400. Without a
// certificate l is returned as it is. On error l is closed.
func httpsListener(l net.Listener, certFile, keyFile string) (net.Listener, error) {
	if certFile == "" {
		return l, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("TLS (--tls-cert, --tls-key): %w", err)
	}
	return tls.NewListener(l, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}), nil
}
