package client_test

import (
	"fmt"

	"github.com/sharevault/sharevault/client"
)

// The words alone give the vault ID: here the BIP-39 reference words of entropy 7f…7f,
// whose vault ID is pinned in internal/recovery/testdata/keys-v1.json.
func ExampleKeysFromWords() {
	keys, err := client.KeysFromWords("1. legal 2. winner 3. thank 4. year 5. wave 6. sausage\n"+
		"7. worth 8. useful 9. legal 10. winner 11. thank 12. yellow", "")
	if err != nil {
		panic(err)
	}
	fmt.Println(keys.VaultID())
	fmt.Println(keys) // keys never print their secrets
	// Output:
	// f78648155e7af81582f8a7e2c4945f166aaf42a6c02c9e17f09a683ab219a031
	// client.Keys{vault f78648155e7af81582f8a7e2c4945f166aaf42a6c02c9e17f09a683ab219a031}
}

func ExampleWords_SeedQR() {
	w, _ := client.NewWords(12)
	fmt.Println(len(w.SeedQR()), w) // four digits a word; the words themselves never print
	// Output: 48 [redacted]
}
