package grafanasql

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrVariable wraps every problem with a template variable: a reference to
// a format that is not emulated, a value that does not fit the variable.
var ErrVariable = errors.New("grafanasql: template variable")

// allValue is what Grafana stores as the value of a variable whose All
// option is selected.
const allValue = "$__all"

// Variable is a template variable as the browser holds it when a panel's
// query runs.
type Variable struct {
	// Name is the variable's name: $Name, ${Name}, ${Name:format}.
	Name string
	// Value is the selection: exactly one value for a single-value variable,
	// any number for a multi-value one. Ignored when All is set.
	Value []string
	// Multi marks a multi-value variable: Grafana then holds its value as
	// an array, even with one value selected.
	Multi bool
	// All means the All option is selected; the variable then stands for
	// every one of Options (dashboards here set no custom all value).
	All bool
	// Options are the variable's values, without the All option.
	Options []string
}

// value returns the variable's value as Grafana holds it: a string, or a
// []string for a multi-value variable; and the string JavaScript's
// toString() makes of it.
func (v Variable) value() (any, string, error) {
	if v.All {
		return allValue, allValue, nil
	}
	if v.Multi {
		return v.Value, strings.Join(v.Value, ","), nil
	}
	if len(v.Value) != 1 {
		return nil, "", fmt.Errorf("%w %q: a single-value variable needs exactly one value, got %d", ErrVariable, v.Name, len(v.Value))
	}
	return v.Value[0], v.Value[0], nil
}

// variableRE is Grafana's variable syntax (public/app/features/variables/
// utils.ts, variableRegex): $name, [[name:format]], ${name.path:format}.
var variableRE = regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}`)

// Interpolate does what the browser does to a panel's SQL before it is sent
// to the plugin's backend: the plugin's applyConditionalAll, then Grafana's
// template service with the plugin's format. References to names that are
// not in vars (Grafana's own $__ names, the backend's macros) are left as
// they are.
func Interpolate(sql string, vars []Variable) (string, error) {
	byName := make(map[string]Variable, len(vars))
	for _, v := range vars {
		byName[v.Name] = v
	}
	sql, err := applyConditionalAll(sql, byName)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	last := 0
	for _, ix := range variableRE.FindAllStringSubmatchIndex(sql, -1) {
		group := func(n int) string {
			if ix[2*n] < 0 {
				return ""
			}
			return sql[ix[2*n]:ix[2*n+1]]
		}
		match := sql[ix[0]:ix[1]]
		b.WriteString(sql[last:ix[0]])
		last = ix[1]
		name := firstNonEmpty(group(1), group(2), group(4))
		v, ok := byName[name]
		if !ok {
			b.WriteString(match)
			continue
		}
		if group(5) != "" {
			return "", fmt.Errorf("%w %q: field paths (%s) are not emulated", ErrVariable, name, match)
		}
		res, err := formatValue(v, firstNonEmpty(group(3), group(6)))
		if err != nil {
			return "", err
		}
		b.WriteString(res)
	}
	b.WriteString(sql[last:])
	return b.String(), nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// formatValue is Grafana's TemplateSrv.formatValue for the formats the
// dashboards may use; format "" is the ClickHouse plugin's own format
// function (an array becomes 'a','b', a single value stays as it is).
func formatValue(v Variable, format string) (string, error) {
	value, _, err := v.value()
	if err != nil {
		return "", err
	}
	if value == allValue {
		// No custom all value: All stands for every option, as an array.
		value = v.Options
	}
	switch format {
	case "":
		if arr, ok := value.([]string); ok {
			return "'" + strings.Join(arr, "','") + "'", nil
		}
		return value.(string), nil
	case "sqlstring":
		quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
		if arr, ok := value.([]string); ok {
			parts := make([]string, len(arr))
			for i, s := range arr {
				parts[i] = quote(s)
			}
			return strings.Join(parts, ","), nil
		}
		return quote(value.(string)), nil
	case "raw", "csv":
		if arr, ok := value.([]string); ok {
			return strings.Join(arr, ","), nil
		}
		return value.(string), nil
	default:
		return "", fmt.Errorf("%w %q: format %q is not emulated (use sqlstring, raw, csv or none)", ErrVariable, v.Name, format)
	}
}

// applyConditionalAll is the plugin's Datasource.applyConditionalAll: from
// the last $__conditionalAll( backwards, each call with two arguments
// becomes 1=1 when its variable's value is empty or All, else its first
// argument. A call without two arguments is an error here (the plugin
// would leave it, and ClickHouse would fail on it).
func applyConditionalAll(sql string, vars map[string]Variable) (string, error) {
	const macro = "$__conditionalAll("
	i := strings.LastIndex(sql, macro)
	for i != -1 {
		params := macroArgs(sql, i+len(macro)-1)
		if len(params) != 2 {
			return "", fmt.Errorf("%w: $__conditionalAll needs two arguments (a condition and $variable), got %d", ErrVariable, len(params))
		}
		phrase := params[0]
		if name := conditionalVar(strings.TrimSpace(params[1])); name != "" {
			if v, ok := vars[name]; ok {
				_, s, err := v.value()
				if err != nil {
					return "", err
				}
				if s == "" || s == allValue {
					phrase = "1=1"
				}
			}
		}
		sql = jsReplaceFirst(sql, macro+params[0]+","+params[1]+")", phrase)
		i = strings.LastIndex(sql, macro)
	}
	return sql, nil
}

// macroArgs is the plugin's getMacroArgs: the arguments of the call whose
// opening parenthesis is at open, split at commas of the first level.
// Parentheses inside string literals count too, as in the plugin.
func macroArgs(s string, open int) []string {
	sub := s[open:]
	var args []string
	depth, last := 0, 1
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		if c != '(' && c != ')' && c != ',' {
			continue
		}
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		}
		if c == ',' && depth == 1 {
			args = append(args, sub[last:i])
			last = i + 1
		}
		if depth == 0 {
			return append(args, sub[last:i])
		}
	}
	return nil
}

// conditionalVar is the variable name the plugin finds in the second
// argument of $__conditionalAll with /(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+/:
// the first name written ${name} or $name. ${name:format} is not found.
func conditionalVar(s string) string {
	word := func(p int) int {
		q := p
		for q < len(s) && isWord(s[q]) {
			q++
		}
		return q
	}
	for p := 0; p < len(s); p++ {
		if p >= 2 && s[p-2:p] == "${" {
			if q := word(p); q > p && q < len(s) && s[q] == '}' {
				return s[p:q]
			}
		}
		if p >= 1 && s[p-1] == '$' {
			if q := word(p); q > p {
				return s[p:q]
			}
		}
	}
	return ""
}

func isWord(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// jsReplaceFirst is JavaScript's s.replace(pattern, replacement) with a
// string pattern: the first occurrence is replaced, and the replacement's
// $$, $&, $` and $' patterns are honoured.
func jsReplaceFirst(s, pattern, replacement string) string {
	i := strings.Index(s, pattern)
	if i < 0 {
		return s
	}
	var b strings.Builder
	for j := 0; j < len(replacement); j++ {
		c := replacement[j]
		if c == '$' && j+1 < len(replacement) {
			switch replacement[j+1] {
			case '$':
				b.WriteByte('$')
				j++
				continue
			case '&':
				b.WriteString(pattern)
				j++
				continue
			case '`':
				b.WriteString(s[:i])
				j++
				continue
			case '\'':
				b.WriteString(s[i+len(pattern):])
				j++
				continue
			}
		}
		b.WriteByte(c)
	}
	return s[:i] + b.String() + s[i+len(pattern):]
}

// References returns the names of the template variables sql refers to,
// in order of first appearance, without Grafana's own names (those that
// start with "__", such as $__timeFilter or ${__data.fields.x}).
func References(sql string) []string {
	seen := map[string]bool{}
	var names []string
	for _, m := range variableRE.FindAllStringSubmatch(sql, -1) {
		name := firstNonEmpty(m[1], m[2], m[4])
		if strings.HasPrefix(name, "__") || seen[name] {
			continue
		}
		seen[name] = true
		names = append(names, name)
	}
	return names
}
