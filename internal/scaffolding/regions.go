package scaffolding

import (
	"bytes"
	"fmt"
	"strings"
)

// Region markers. A generated file marks each region jetkit may extend
// with a line containing "jetkit:begin NAME" and one containing
// "jetkit:end NAME"; jetkit inserts lines just above the end marker and
// never changes anything else in the file.
const (
	beginMarker = "jetkit:begin "
	endMarker   = "jetkit:end "
)

// insertInRegion returns src with snippet inserted at the end of region
// name, each line indented like the end marker. It reports inserted=false
// when the region already holds exactly these lines. file names the file in
// errors.
func insertInRegion(file string, src []byte, name string, snippet []byte) (out []byte, inserted bool, err error) {
	lines := bytes.SplitAfter(src, []byte("\n"))
	begin, end := -1, -1
	for i, l := range lines {
		s := string(l)
		switch {
		case strings.Contains(s, beginMarker+name) && begin < 0:
			begin = i
		case strings.Contains(s, endMarker+name) && begin >= 0 && end < 0:
			end = i
		}
	}
	if begin < 0 || end < 0 {
		return nil, false, fmt.Errorf("%s: the region %q is missing (markers %q and %q); restore the two marker lines, or make the change by hand", file, name, beginMarker+name, endMarker+name)
	}
	endLine := string(lines[end])
	indent := endLine[:len(endLine)-len(strings.TrimLeft(endLine, " \t"))]
	var add bytes.Buffer
	for _, l := range strings.SplitAfter(strings.TrimRight(string(snippet), "\n")+"\n", "\n") {
		if l == "" {
			continue
		}
		if strings.TrimSpace(l) != "" {
			add.WriteString(indent)
		}
		add.WriteString(l)
	}
	region := bytes.Join(lines[begin+1:end], nil)
	if bytes.Contains(region, add.Bytes()) {
		return src, false, nil
	}
	var b bytes.Buffer
	b.Write(bytes.Join(lines[:end], nil))
	b.Write(add.Bytes())
	b.Write(bytes.Join(lines[end:], nil))
	return b.Bytes(), true, nil
}

// regionHolds reports whether region name of src holds a line that is
// line once trimmed.
func regionHolds(src []byte, name, line string) bool {
	in := false
	for _, l := range strings.Split(string(src), "\n") {
		switch {
		case strings.Contains(l, beginMarker+name) && !in:
			in = true
		case strings.Contains(l, endMarker+name) && in:
			return false
		case in && strings.TrimSpace(l) == line:
			return true
		}
	}
	return false
}
