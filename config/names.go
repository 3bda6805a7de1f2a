package config

// Variables lists every environment variable Load reads, in the order it
// first reads them. It is derived from Load itself (by recording what it
// asks for while every variable is unset, so fallback names such as the
// Shopify CLI's are asked for too), so deployment files can be checked
// against it and it cannot fall behind the code.
func Variables() []string {
	var names []string
	seen := map[string]bool{}
	Load(func(name string) string {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
		return ""
	})
	return names
}
