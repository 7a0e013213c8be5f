package fragstore

import (
	"errors"
	"fmt"
	"sync"

	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/keys"
)

// maxDamaged bounds the damaged fragments remembered per stream: doctor names the first ones
// and says to run fsck for the rest.
const maxDamaged = 20

// damage remembers the fragments whose media could not be served since kvsd started: records
// that failed their checksums or authentication (ErrCorrupt), and key errors. Reads of them
// fail (the server never serves a damaged record as if whole); this is what the log and doctor
// name.
type damage struct {
	mu      sync.Mutex
	corrupt map[Key][]string // fragment numbers, at most maxDamaged
	keyErr  map[Key]error    // the latest key error
}

// noteRead records a failed read of fragment number of k and logs it; err is returned as is.
func (s *Store) noteRead(k Key, number string, err error) error {
	if err == nil {
		return nil
	}
	d := &s.damage
	switch _, isKey := keys.CodeOf(err); {
	case errors.Is(err, ErrCorrupt):
		d.mu.Lock()
		if d.corrupt == nil {
			d.corrupt = map[Key][]string{}
		}
		list := d.corrupt[k]
		known := false
		for _, n := range list {
			known = known || n == number
		}
		if !known && len(list) < maxDamaged {
			d.corrupt[k] = append(list, number)
		}
		d.mu.Unlock()
		if !known {
			s.log.Error("stored fragment media is damaged; it is not served (kvsd fsck --repair drops it from the index)",
				"stream", k.Name, "fragment", number, "err", err)
		}
	case isKey:
		d.mu.Lock()
		if d.keyErr == nil {
			d.keyErr = map[Key]error{}
		}
		d.keyErr[k] = err
		d.mu.Unlock()
		s.log.Error("stored fragment media cannot be decrypted: its key cannot be used", "stream", k.Name, "fragment", number, "err", err)
	}
	return err
}

// Damage says, for doctor, which fragments of k could not be served since kvsd started.
func (s *Store) Damage(k Key) []diag.Finding {
	d := &s.damage
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []diag.Finding
	if list := d.corrupt[k]; len(list) > 0 {
		out = append(out, diag.Finding{Level: diag.Error, Code: "MEDIA_DAMAGED",
			Message: fmt.Sprintf("%d stored fragments failed their checksums and are not served (readers get an error for them): %v", len(list), list),
			Fix:     "Stop kvsd and run `kvsd fsck --data-dir DIR` to list every damaged record, then `--repair` to drop them from the index (media is never deleted); restore them from a backup if you have one."})
	}
	if err := d.keyErr[k]; err != nil {
		code, _ := keys.CodeOf(err)
		out = append(out, diag.Finding{Level: diag.Error, Code: "MEDIA_KEY_" + code.String(),
			Message: fmt.Sprintf("stored fragments could not be decrypted: %v", err),
			Fix:     "Start kvsd with the key file (or KMS key) that wrapped this media; keys removed from a key file must be put back. See README, Encryption at rest."})
	}
	return out
}
