package connect

import (
	"strings"
	"testing"
)

func TestNATSErrorsHideURLPasswords(t *testing.T) {
	_, err := ConnectNATS(NATS{URL: "nats://u:sekret@127.0.0.1:notaport"}, nil)
	if err == nil {
		t.Fatal("connect to a malformed URL succeeded")
	}
	if strings.Contains(err.Error(), "sekret") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "***@127.0.0.1") {
		t.Fatalf("the error no longer names the server: %v", err)
	}
}
