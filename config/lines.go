package config

import (
	"bufio"
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

// The decoder does not expose key positions, so lines are found by reading the file the
// way a person would: track the current [table] or [[array]] header and look for `key =`.
// It is only used to point at a line in an error message; when unsure it returns 0.

var (
	headerRe = regexp.MustCompile(`^\s*\[(\[)?\s*([A-Za-z0-9_.\-" ]+?)\s*\]`)
	keyRe    = regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+|"[^"]*")\s*=`)
	indexRe  = regexp.MustCompile(`^(.*)\[(\d+)\]`)
)

// keyLineDotted finds the line of a key as validate names it: "slack.reply" or
// "policy.rule[2] (name).input".
func keyLineDotted(data []byte, key string) int {
	if i := strings.Index(key, " ("); i >= 0 {
		if j := strings.Index(key[i:], ")"); j >= 0 {
			key = key[:i] + key[i+j+1:]
		}
	}
	dot := strings.LastIndex(key, ".")
	if dot < 0 {
		return findKey(data, "", -1, key)
	}
	table, leaf := key[:dot], key[dot+1:]
	index := -1
	if m := indexRe.FindStringSubmatch(table); m != nil {
		table = m[1]
		index, _ = strconv.Atoi(m[2])
	}
	return findKey(data, table, index, leaf)
}

// findKey returns the 1-based line of leaf inside table (the index-th [[table]] when
// index > 0), or of the [table] header itself when leaf is missing there.
func findKey(data []byte, table string, index int, leaf string) int {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	current, seen, line, headerLine := "", 0, 0, 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if m := headerRe.FindStringSubmatch(text); m != nil {
			current = strings.ReplaceAll(m[2], " ", "")
			if current == table {
				seen++
				if index <= 0 || seen == index {
					headerLine = line
				}
			}
			continue
		}
		if current != table || (index > 0 && seen != index) {
			continue
		}
		if m := keyRe.FindStringSubmatch(text); m != nil && strings.Trim(m[1], `"`) == leaf {
			return line
		}
	}
	if headerLine > 0 && leaf == "" {
		return headerLine
	}
	if table == "" || leaf != "" {
		// The key may itself be a table, e.g. an unknown [slak] section.
		if n := findHeader(data, joinKey(table, leaf)); n > 0 {
			return n
		}
	}
	// A key the table lacks (a rule without action): the table's header.
	return headerLine
}

func findHeader(data []byte, name string) int {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		if m := headerRe.FindStringSubmatch(sc.Text()); m != nil && strings.ReplaceAll(m[2], " ", "") == name {
			return line
		}
	}
	return 0
}

func joinKey(table, leaf string) string {
	if table == "" {
		return leaf
	}
	return table + "." + leaf
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
