package integration

import "strings"

// surnameParticles are the lower-case words that begin a family name
// ("van" in "Ludwig van Beethoven"). Only lower case counts: "Van
// Morrison" is a first name and a last name.
var surnameParticles = map[string]bool{
	"da": true, "das": true, "de": true, "del": true, "della": true, "den": true, "der": true,
	"di": true, "do": true, "dos": true, "du": true, "la": true, "le": true, "ten": true,
	"ter": true, "van": true, "von": true, "zu": true, "bin": true, "ibn": true,
}

// nameSuffixes are the generational suffixes that stay with the last name
// ("Martin Luther King Jr."), compared without case and a final period.
var nameSuffixes = map[string]bool{"jr": true, "sr": true, "ii": true, "iii": true, "iv": true}

func isSuffix(word string) bool {
	return nameSuffixes[strings.ToLower(strings.TrimSuffix(word, "."))]
}

// SplitName splits a whole name into a first and a last name, the one
// rule intake and every connector use (the README states it): spaces (any Unicode space, however
// many) separate words; "Last, First" is read as written; otherwise the
// last word is the last name, with the lower-case particles before it
// ("van", "de la", ...) and a generational suffix after it ("Jr.", "III"),
// and the words before are the first name. A single word is a last name
// only. An empty name has no parts.
func SplitName(name string) (first, last string) {
	words := strings.Fields(name)
	if len(words) == 0 {
		return "", ""
	}
	if whole := strings.Join(words, " "); strings.Contains(whole, ",") {
		// "Lovelace, Ada": one comma with words on both sides, unless what
		// follows it is a suffix ("King, Jr."). Other commas are spaces.
		before, after, _ := strings.Cut(whole, ",")
		before, after = strings.TrimSpace(before), strings.TrimSpace(after)
		if before != "" && after != "" && !strings.Contains(after, ",") && !isSuffix(after) {
			return after, before
		}
		if words = strings.Fields(strings.ReplaceAll(whole, ",", " ")); len(words) == 0 {
			return "", ""
		}
	}
	end := len(words)
	if end > 1 && isSuffix(words[end-1]) {
		end--
	}
	start := end - 1
	for start > 0 && surnameParticles[words[start-1]] {
		start--
	}
	return strings.Join(words[:start], " "), strings.Join(words[start:], " ")
}
