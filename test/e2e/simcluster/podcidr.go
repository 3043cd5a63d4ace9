package simcluster

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// lockPodCIDR picks the first 127.N.0.0/16 (N = 1..254) that no other
// simulated cluster on this machine holds, and holds it until unlock is
// called or the process ends: a flock on a file in the temp directory, which
// the kernel releases when the holder dies, so a crashed run never leaves a
// range taken. A range whose first address already has something on the
// Redis port is skipped too. A /16, not a /24: kwok never hands out an IP
// twice while its pod lives, and a suite with a few platforms of ~40 pods
// each, plus their rollouts, would come close to a /24's 254.
func lockPodCIDR() (cidr string, unlock func(), err error) {
	for n := 1; n <= 254; n++ {
		cidr := fmt.Sprintf("127.%d.0.0/16", n)
		path := filepath.Join(os.TempDir(), fmt.Sprintf("simcluster-podcidr-127.%d.lock", n))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return "", nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			_ = f.Close()
			continue
		}
		if !portFree(fmt.Sprintf("127.%d.0.1:6379", n)) {
			_ = f.Close()
			continue
		}
		return cidr, func() { _ = f.Close() }, nil
	}
	return "", nil, errNoFreeCIDR
}

func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
