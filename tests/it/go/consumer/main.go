// The Ministry of Education's client of the fund's contract, in Go
// (grpc-go): the ministry's certificate, the platform CA, and the jisr-*
// metadata, as docs/stacks.md shows. Prints one JSON object.
//
// Usage: consumer PKI_DIR ADDRESS SERVER_NAME
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "interop.gov.ma/socialsecurity/v1"
)

func main() {
	pki, address, serverName := os.Args[1], os.Args[2], os.Args[3]
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "education.crt"), filepath.Join(pki, "education.key"))
	if err != nil {
		fail(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		fail(fmt.Errorf("no certificate in ca.crt"))
	}
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert},
		RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS13})
	conn, err := grpc.Dial(address, grpc.WithTransportCredentials(creds))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	stub := pb.NewCoverageClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "jisr-purpose", "school-grant",
		"jisr-procedure", "school-grant-2027", "jisr-official", "education.agent-017")
	var headers metadata.MD
	reply, err := stub.GetCoverage(ctx, &pb.GetCoverageRequest{CitizenId: "AB123456"}, grpc.Header(&headers))
	out := map[string]interface{}{"call": "GetCoverage"}
	if err != nil {
		out["code"], out["message"] = status.Code(err).String(), status.Convert(err).Message()
	} else {
		out["covered"], out["scheme"], out["valid_until"] = reply.Covered, reply.Scheme, reply.ValidUntil
		out["basis"] = headers.Get("jisr-basis")
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "consumer:", err)
	os.Exit(1)
}
