// Command etcd is etcd's own main (go.etcd.io/etcd/v3 main.go), built here so that it shares
// this module's dependency versions (and compilation) with kube-apiserver.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
