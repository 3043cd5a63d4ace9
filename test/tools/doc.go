// Package tools tests hack/tool.sh, which provides the pinned binaries the
// tests, the demo and the simulated cluster run (kube-apiserver, etcd, kwok,
// helm, controller-gen, gotestsum, ...): the upstream release artifact first,
// verified against its published SHA-256, and the source build from the Go
// module proxy when that fails. A local HTTP server stands in for the release
// sites (dl.k8s.io, github.com, api.github.com, get.helm.sh) through
// PARSER_OPERATOR_RELEASE_MIRROR, publishing each tool the way its project
// does; a stand-in `go` on PATH records the source builds, and one test runs
// the real one. `make test` runs them.
package tools
