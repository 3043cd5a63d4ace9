package controller

import (
	"slices"
	"testing"

	"github.com/vkparser/parser-operator/internal/resource"
)

// TestManagedKindsAreTheChildKinds: the kinds the controller watches,
// caches and prunes are the kinds the builders make (resource.ChildKinds);
// a kind added to one table and not the other would be created and never
// watched or pruned, or watched for nothing.
func TestManagedKindsAreTheChildKinds(t *testing.T) {
	var managed, children []string
	for _, k := range managedKinds {
		managed = append(managed, kindOf(k.object))
	}
	for _, k := range resource.ChildKinds {
		children = append(children, k.Kind)
	}
	slices.Sort(managed)
	slices.Sort(children)
	if !slices.Equal(managed, children) {
		t.Errorf("managedKinds %v, resource.ChildKinds %v", managed, children)
	}
}
