package replies

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestHeadTail(t *testing.T) {
	lines := func(n int) string {
		var b []string
		for i := 1; i <= n; i++ {
			b = append(b, fmt.Sprintf("l%d", i))
		}
		return strings.Join(b, "\n")
	}
	tests := []struct {
		name       string
		in         string
		head, tail int
		want       Excerpt
	}{
		{"empty", "", 2, 2, Excerpt{Head: nil, Tail: []string{}}},
		{"short", "a\nb", 2, 2, Excerpt{Head: []string{"a", "b"}, Tail: []string{}, Total: 2}},
		{"fits exactly", "a\nb\nc\nd", 2, 2, Excerpt{Head: []string{"a", "b"}, Tail: []string{"c", "d"}, Total: 4}},
		{"omits middle", lines(9), 2, 3, Excerpt{Head: []string{"l1", "l2"}, Tail: []string{"l7", "l8", "l9"}, Omitted: 4, Total: 9}},
		{"trailing newline", "a\nb\n", 0, 5, Excerpt{Tail: []string{"a", "b"}, Total: 2}},
		{"empty lines count", "\n\n", 0, 5, Excerpt{Tail: []string{"", ""}, Total: 2}},
		{"tail only", lines(5), 0, 2, Excerpt{Tail: []string{"l4", "l5"}, Omitted: 3, Total: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HeadTail(iotest.OneByteReader(strings.NewReader(tt.in)), tt.head, tt.tail, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Head) == 0 {
				got.Head = nil
			}
			if len(tt.want.Head) == 0 {
				tt.want.Head = nil
			}
			if len(got.Tail) == 0 {
				got.Tail = []string{}
			}
			if len(tt.want.Tail) == 0 {
				tt.want.Tail = []string{}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestHeadTailString(t *testing.T) {
	e, _ := HeadTail(strings.NewReader("1\n2\n3\n4\n5\n6"), 2, 2, 0)
	if got, want := e.String(), "1\n2\n… 2 lines omitted …\n5\n6"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestHeadTailLongLines(t *testing.T) {
	in := strings.Repeat("é", 10) + "\n" + strings.Repeat("a", 7) + "&amp;b\n" + strings.Repeat("x", 5000)
	e, err := HeadTail(strings.NewReader(in), 3, 0, 9)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"éééé…", "aaaaaaa…", "xxxxxxxxx…"}
	if !reflect.DeepEqual(e.Head, want) {
		t.Errorf("got %q, want %q", e.Head, want)
	}
}

func TestLastLines(t *testing.T) {
	got, err := LastLines(strings.NewReader("a\nb\nc\nd"), 2, 0)
	if err != nil || !reflect.DeepEqual(got, []string{"c", "d"}) {
		t.Errorf("LastLines = %q, %v", got, err)
	}
	if _, err := LastLines(iotest.ErrReader(iotest.ErrTimeout), 2, 0); err == nil {
		t.Error("read error not returned")
	}
}
