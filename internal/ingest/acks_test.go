package ingest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAckJSON(t *testing.T) {
	num := "91343852333181432392682062607743920146159169392"
	for _, tc := range []struct {
		ack  Ack
		want string
	}{
		{Ack{EventType: EventBuffering, FragmentTimecode: 1600994737365, FragmentNumber: num},
			`{"EventType":"BUFFERING","FragmentTimecode":1600994737365,"FragmentNumber":"` + num + `"}`},
		// RELATIVE streams start at timecode 0, which must stay on the wire.
		{Ack{EventType: EventPersisted, FragmentTimecode: 0, FragmentNumber: num},
			`{"EventType":"PERSISTED","FragmentTimecode":0,"FragmentNumber":"` + num + `"}`},
		{Ack{EventType: EventIdle, FragmentTimecode: 7, FragmentNumber: num, ErrorID: 4000}, `{"EventType":"IDLE"}`},
		{Ack{EventType: EventError, FragmentTimecode: 0, FragmentNumber: num, ErrorID: 4004, ErrorCode: "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS"},
			`{"EventType":"ERROR","FragmentTimecode":0,"FragmentNumber":"` + num + `","ErrorId":4004,"ErrorCode":"FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS"}`},
		{Ack{EventType: EventError, ErrorID: 4006, ErrorCode: "INVALID_MKV_DATA"},
			`{"EventType":"ERROR","ErrorId":4006,"ErrorCode":"INVALID_MKV_DATA"}`},
		{Ack{EventType: EventReceived, FragmentTimecode: 5, FragmentNumber: num, ErrorID: 4000, ErrorCode: "X"},
			`{"EventType":"RECEIVED","FragmentTimecode":5,"FragmentNumber":"` + num + `"}`},
	} {
		b, err := tc.ack.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, tc.want, string(b))
		b, err = json.Marshal(tc.ack) // through the Marshaler, as encoders see it
		require.NoError(t, err)
		require.Equal(t, tc.want, string(b))
	}
}

func TestErrorCodesAreKnownToProducers(t *testing.T) {
	// The PIC turns ids outside {4000–4012, 4500–4507, 5000, 5001} into "unknown ack error".
	for id, code := range errorCodes {
		require.True(t, id >= 4000 && id <= 4012 || id >= 4500 && id <= 4507 || id == 5000 || id == 5001, "id %d", id)
		require.NotEmpty(t, code)
	}
}
