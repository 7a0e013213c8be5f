package stream

import (
	"context"
	"encoding/base64"
	"fmt"
	"sync/atomic"
	"time"
)

// Store is the catalog's stream records: the service needs all of it, and catalog.Streams names
// it as part of the contract every catalog implementation provides (catalog/bolt, later
// PostgreSQL; catalogtest checks it). UpdateStream and DeleteStream run fn inside one
// transaction so version checks are atomic. Names sort in byte order (PostgreSQL: COLLATE "C");
// CreationTime keeps milliseconds; fn must not change Name; DeleteStream accepts a nil check; a
// limit below 1 lists nothing.
//
// Creation times strictly increase per name, deleted streams included: a stream's name and
// creation time (its ARN, its fragments' fragstore.Key) never name another incarnation, even
// one deleted and created again within the same millisecond.
type Store interface {
	// CreateStream adds s; ErrInUse if a stream with that name exists. When s.CreationTime
	// is not after the latest creation time the catalog stored for s.Name (its streams
	// deleted since included), it first moves it to one millisecond after that one with
	// s.SetCreationTime, in the same transaction.
	CreateStream(ctx context.Context, s *Stream) error
	// GetStream returns a copy of the named stream or ErrNotFound.
	GetStream(ctx context.Context, name string) (*Stream, error)
	// ListStreams returns up to limit streams whose name starts with prefix and sorts after
	// startAfter, in name order.
	ListStreams(ctx context.Context, prefix, startAfter string, limit int) ([]*Stream, error)
	// UpdateStream loads the stream, lets fn mutate it and stores the result, all in one
	// transaction; an error from fn aborts and is returned as is.
	UpdateStream(ctx context.Context, name string, fn func(*Stream) error) (*Stream, error)
	// DeleteStream removes the stream if check (run inside the transaction) returns nil.
	DeleteStream(ctx context.Context, name string, check func(*Stream) error) error
}

// DestinationChecker checks a destination URI the shape rules accept; the notifier implements it.
type DestinationChecker interface {
	CheckDestination(ctx context.Context, uri string) error
}

// Service implements the KVS control-plane operations.
type Service struct {
	Store     Store
	Region    string
	AccountID string
	// PublicURL is what GetDataEndpoint returns: scheme and host, no trailing slash.
	PublicURL string
	Now       func() time.Time
	// OnDelete, when set, runs after a stream left the catalog: it ends the stream's sessions
	// and removes its data. It reports its own failures: the stream is gone either way, and
	// data left behind is collected at the next start.
	OnDelete func(ctx context.Context, s *Stream)
	// Destinations checks a notification destination, when it is set, for what only the
	// server knows (addresses it refuses to connect to, webhook secrets); nil: no check.
	Destinations DestinationChecker
	// DefaultKmsKeyID is the KmsKeyId of streams created without one: the key that encrypts
	// their media. "" is KVS's AWS-managed key, arn:aws:kms:<region>:<account>:alias/aws/kinesisvideo.
	DefaultKmsKeyID string
	// CheckKmsKey, when set, says whether a KmsKeyId given to CreateStream can encrypt the
	// stream's media; its error refuses the stream (InvalidArgumentException).
	CheckKmsKey func(ctx context.Context, keyID string) error

	changes atomic.Uint64 // see Changes
}

// Changes counts the changes to streams made through the service (create, update, delete),
// each counted once the catalog has it, and those NoteChange reports. A reader that caches a
// stream (a PutMedia session, per fragment) reads it again only when Changes moved since it
// read it.
func (s *Service) Changes() uint64 { return s.changes.Load() }

// NoteChange counts a change made by another process sharing the catalog (another kvsd node),
// or one that may have been: readers of cached streams read them again.
func (s *Service) NoteChange() { s.changes.Add(1) }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// CreateInput holds CreateStream's parameters; nil pointers are absent members.
type CreateInput struct {
	Name           string
	DeviceName     *string
	MediaType      *string
	KmsKeyID       *string
	RetentionHours *int
	Tags           map[string]string
	StorageTier    *string
}

// Create adds a stream. KVS creates asynchronously; kvsd's streams are ACTIVE at once, which
// every producer accepts (they poll DescribeStream until ACTIVE).
func (s *Service) Create(ctx context.Context, in CreateInput) (*Stream, error) {
	if err := ValidateName("StreamName", in.Name); err != nil {
		return nil, err
	}
	now := s.now().Truncate(time.Millisecond)
	st := &Stream{
		Name:         in.Name,
		ARN:          FormatARN(s.Region, s.AccountID, in.Name, now),
		KmsKeyID:     s.defaultKmsKeyID(),
		Version:      newVersion(),
		Status:       StatusActive,
		CreationTime: now,
		StorageTier:  "HOT",
		Tags:         in.Tags,
	}
	if in.DeviceName != nil {
		if err := validateDeviceName(*in.DeviceName); err != nil {
			return nil, err
		}
		st.DeviceName = *in.DeviceName
	}
	if in.MediaType != nil {
		if err := validateMediaType(*in.MediaType); err != nil {
			return nil, err
		}
		st.MediaType = *in.MediaType
	}
	if in.KmsKeyID != nil {
		if err := validateKmsKeyID(*in.KmsKeyID); err != nil {
			return nil, err
		}
		if s.CheckKmsKey != nil {
			if err := s.CheckKmsKey(ctx, *in.KmsKeyID); err != nil {
				return nil, Invalid("KmsKeyId %.200q cannot be used to encrypt the stream: %v", *in.KmsKeyID, err)
			}
		}
		st.KmsKeyID = *in.KmsKeyID
	}
	if in.RetentionHours != nil {
		if err := validateRetention("DataRetentionInHours", *in.RetentionHours); err != nil {
			return nil, err
		}
		st.RetentionHours = *in.RetentionHours
	}
	if in.StorageTier != nil {
		if err := oneOf("StreamStorageConfiguration.DefaultStorageTier", *in.StorageTier, "HOT", "WARM"); err != nil {
			return nil, err
		}
		st.StorageTier = *in.StorageTier
	}
	if len(in.Tags) > MaxTags {
		return nil, fmt.Errorf("%w: a stream can have at most %d tags, %d were given", ErrTooManyTags, MaxTags, len(in.Tags))
	}
	if err := validateTags(in.Tags); err != nil {
		return nil, err
	}
	// The catalog may move the creation time (and the ARN) forward: see Store.CreateStream.
	err := s.Store.CreateStream(ctx, st)
	s.changes.Add(1)
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", in.Name, err)
	}
	return st, nil
}

// defaultKmsKeyID is DefaultKmsKeyID, or KVS's AWS-managed key.
func (s *Service) defaultKmsKeyID() string {
	if s.DefaultKmsKeyID != "" {
		return s.DefaultKmsKeyID
	}
	return DefaultKmsKeyARN(s.Region, s.AccountID)
}

// DefaultKmsKeyARN is the KmsKeyId KVS reports for streams created without one: its
// AWS-managed key's alias.
func DefaultKmsKeyARN(region, account string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:alias/aws/kinesisvideo", region, account)
}

// Describe resolves ref to its stream.
func (s *Service) Describe(ctx context.Context, ref Ref) (*Stream, error) {
	return s.lookup(ctx, ref, ErrInvalidArgument)
}

// lookup reads the stream ref names; badARN as for resolve.
func (s *Service) lookup(ctx context.Context, ref Ref, badARN error) (*Stream, error) {
	name, check, err := s.resolve(ref, badARN)
	if err != nil {
		return nil, err
	}
	st, err := s.Store.GetStream(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := check(st); err != nil {
		return nil, err
	}
	return st, nil
}

// resolve validates ref and returns the stream name plus a check that an ARN, when given,
// names this very stream (a re-created stream of the same name has another creation time).
// badARN is the sentinel a malformed ARN maps to (InvalidResourceFormat for the tag APIs).
func (s *Service) resolve(ref Ref, badARN error) (string, func(*Stream) error, error) {
	noCheck := func(*Stream) error { return nil }
	switch {
	case ref.Name != "" && ref.ARN != "":
		return "", nil, invalid("specify either StreamName or StreamARN, not both")
	case ref.Name == "" && ref.ARN == "":
		return "", nil, invalid("StreamName or StreamARN is required")
	case ref.Name != "":
		return ref.Name, noCheck, ValidateName("StreamName", ref.Name)
	}
	a, err := parseARN(ref.ARN)
	if err != nil {
		if badARN != ErrInvalidARN {
			return "", nil, invalid("StreamARN %q is not a Kinesis Video stream ARN", ref.ARN)
		}
		return "", nil, err
	}
	if a.resource != "stream" || a.region != s.Region || a.account != s.AccountID {
		return "", nil, fmt.Errorf("%w: no stream %s in region %s, account %s", ErrNotFound, ref.ARN, s.Region, s.AccountID)
	}
	check := func(st *Stream) error {
		if st.CreationTime.UnixMilli() != a.createdMs {
			return fmt.Errorf("%w: %s names an earlier stream called %s", ErrNotFound, ref.ARN, a.name)
		}
		return nil
	}
	return a.name, check, nil
}

// ListPage is one page of ListStreams.
type ListPage struct {
	Streams   []*Stream
	NextToken string
}

// List returns streams in name order, optionally filtered by name prefix.
func (s *Service) List(ctx context.Context, prefix string, maxResults *int, token string) (ListPage, error) {
	limit := 10000
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > 10000 {
			return ListPage{}, invalid("MaxResults must be between 1 and 10000, got %d", *maxResults)
		}
		limit = *maxResults
	}
	after := ""
	if token != "" {
		b, err := base64.StdEncoding.DecodeString(token)
		if err != nil || len(token) > 1024 || ValidateName("token", string(b)) != nil {
			return ListPage{}, invalid("NextToken %q is not a token returned by ListStreams", token)
		}
		after = string(b)
	}
	streams, err := s.Store.ListStreams(ctx, prefix, after, limit+1)
	if err != nil {
		return ListPage{}, fmt.Errorf("list streams: %w", err)
	}
	page := ListPage{Streams: streams}
	if len(streams) > limit {
		page.Streams = streams[:limit]
		page.NextToken = base64.StdEncoding.EncodeToString([]byte(streams[limit-1].Name))
	}
	return page, nil
}

// Delete removes the stream named by arn, checking currentVersion when given.
func (s *Service) Delete(ctx context.Context, arn string, currentVersion *string) error {
	if arn == "" {
		return invalid("StreamARN is required")
	}
	name, check, err := s.resolve(Ref{ARN: arn}, ErrInvalidArgument)
	if err != nil {
		return err
	}
	if currentVersion != nil {
		if err := validateVersion(*currentVersion); err != nil {
			return err
		}
	}
	var deleted *Stream
	err = s.Store.DeleteStream(ctx, name, func(st *Stream) error {
		if err := check(st); err != nil {
			return err
		}
		deleted = st.Clone()
		return checkVersion(st, currentVersion)
	})
	s.changes.Add(1)
	if err == nil && s.OnDelete != nil {
		s.OnDelete(ctx, deleted)
	}
	return err
}

func checkVersion(st *Stream, v *string) error {
	if v != nil && *v != st.Version {
		return fmt.Errorf("%w: the stream version is %s, not %s; describe the stream for its current version", ErrVersionMismatch, st.Version, *v)
	}
	return nil
}

// mutate applies fn to the stream named by ref inside one catalog transaction.
func (s *Service) mutate(ctx context.Context, ref Ref, badARN error, fn func(*Stream) error) (*Stream, error) {
	name, check, err := s.resolve(ref, badARN)
	if err != nil {
		return nil, err
	}
	defer s.changes.Add(1)
	return s.Store.UpdateStream(ctx, name, func(st *Stream) error {
		if err := check(st); err != nil {
			return err
		}
		if st.Status != StatusActive {
			return fmt.Errorf("%w: stream %s is %s, not ACTIVE", ErrInUse, st.Name, st.Status)
		}
		return fn(st)
	})
}

// mutateVersioned is mutate for the operations that take CurrentVersion and bump the version.
func (s *Service) mutateVersioned(ctx context.Context, ref Ref, version string, fn func(*Stream) error) error {
	if err := validateVersion(version); err != nil {
		return err
	}
	_, err := s.mutate(ctx, ref, ErrInvalidArgument, func(st *Stream) error {
		if err := checkVersion(st, &version); err != nil {
			return err
		}
		if err := fn(st); err != nil {
			return err
		}
		st.Version = newVersion()
		return nil
	})
	return err
}

// Update changes DeviceName and MediaType (UpdateStream).
func (s *Service) Update(ctx context.Context, ref Ref, version string, device, mediaType *string) error {
	if device != nil {
		if err := validateDeviceName(*device); err != nil {
			return err
		}
	}
	if mediaType != nil {
		if err := validateMediaType(*mediaType); err != nil {
			return err
		}
	}
	return s.mutateVersioned(ctx, ref, version, func(st *Stream) error {
		if device != nil {
			st.DeviceName = *device
		}
		if mediaType != nil {
			st.MediaType = *mediaType
		}
		return nil
	})
}

// Retention operations.
const (
	IncreaseRetention = "INCREASE_DATA_RETENTION"
	DecreaseRetention = "DECREASE_DATA_RETENTION"
)

// UpdateRetention adds or removes hours of retention (UpdateDataRetention). A decrease takes
// effect at once: the retention sweeper reads the new value on its next pass, and PutMedia
// connections see it from their next fragment (Changes).
func (s *Service) UpdateRetention(ctx context.Context, ref Ref, version, op string, change *int) error {
	if err := oneOf("Operation", op, IncreaseRetention, DecreaseRetention); err != nil {
		return err
	}
	if change == nil {
		return invalid("DataRetentionChangeInHours is required")
	}
	if *change < 1 {
		return invalid("DataRetentionChangeInHours must be at least 1, got %d", *change)
	}
	return s.mutateVersioned(ctx, ref, version, func(st *Stream) error {
		n := st.RetentionHours + *change
		if op == DecreaseRetention {
			n = st.RetentionHours - *change
		}
		if n < 0 || n > MaxRetentionHours {
			return invalid("retention would become %d hours (now %d); it must stay between 0 and %d", n, st.RetentionHours, MaxRetentionHours)
		}
		st.RetentionHours = n
		return nil
	})
}

// UpdateStorage sets the default storage tier (UpdateStreamStorageConfiguration).
func (s *Service) UpdateStorage(ctx context.Context, ref Ref, version string, tier *string) error {
	if tier == nil {
		return invalid("StreamStorageConfiguration.DefaultStorageTier is required")
	}
	if err := oneOf("StreamStorageConfiguration.DefaultStorageTier", *tier, "HOT", "WARM"); err != nil {
		return err
	}
	return s.mutateVersioned(ctx, ref, version, func(st *Stream) error {
		st.StorageTier = *tier
		return nil
	})
}

// APINames accepted by GetDataEndpoint.
var APINames = []string{
	"PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
	"GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES",
}

// DataEndpoint answers GetDataEndpoint: kvsd serves every API on its own public URL.
func (s *Service) DataEndpoint(ctx context.Context, ref Ref, apiName string) (string, error) {
	if err := oneOf("APIName", apiName, APINames...); err != nil {
		return "", err
	}
	if _, err := s.Describe(ctx, ref); err != nil {
		return "", err
	}
	return s.PublicURL, nil
}

// Tag merges tags into the stream's tags (TagStream).
func (s *Service) Tag(ctx context.Context, ref Ref, tags map[string]string) error {
	if len(tags) == 0 {
		return invalid("Tags must hold at least one entry")
	}
	if err := validateTags(tags); err != nil {
		return err
	}
	_, err := s.mutate(ctx, ref, ErrInvalidARN, func(st *Stream) error {
		merged := len(st.Tags)
		for k := range tags {
			if _, ok := st.Tags[k]; !ok {
				merged++
			}
		}
		if merged > MaxTags {
			return fmt.Errorf("%w: the stream would have %d tags; the limit is %d", ErrTooManyTags, merged, MaxTags)
		}
		if st.Tags == nil {
			st.Tags = map[string]string{}
		}
		for k, v := range tags {
			st.Tags[k] = v
		}
		return nil
	})
	return err
}

// Untag removes keys; missing keys are ignored (UntagStream).
func (s *Service) Untag(ctx context.Context, ref Ref, keys []string) error {
	if len(keys) < 1 || len(keys) > MaxTags {
		return invalid("TagKeyList must hold 1-%d keys, got %d", MaxTags, len(keys))
	}
	for _, k := range keys {
		if err := validateTagKey(k); err != nil {
			return err
		}
	}
	_, err := s.mutate(ctx, ref, ErrInvalidARN, func(st *Stream) error {
		for _, k := range keys {
			delete(st.Tags, k)
		}
		return nil
	})
	return err
}

// Tags returns the stream's tags (ListTagsForStream); malformed ARNs are InvalidResourceFormat.
func (s *Service) Tags(ctx context.Context, ref Ref) (map[string]string, error) {
	st, err := s.lookup(ctx, ref, ErrInvalidARN)
	if err != nil {
		return nil, err
	}
	if st.Tags == nil {
		return map[string]string{}, nil
	}
	return st.Tags, nil
}

// SetImageGeneration stores cfg, or deletes the configuration when cfg is nil. It applies from
// the next fragment (AWS needs a minute; kvsd does not).
func (s *Service) SetImageGeneration(ctx context.Context, ref Ref, cfg *ImageGenerationConfiguration) error {
	if cfg == nil {
		return s.setConfig(ctx, ref, false, "", func(st *Stream) { st.ImageGeneration = nil })
	}
	if err := cfg.Validate(s.Region); err != nil {
		return err
	}
	return s.setConfig(ctx, ref, true, "images are made from stored fragments", func(st *Stream) { st.ImageGeneration = cfg })
}

// SetNotification stores cfg, or deletes the configuration when cfg is nil.
func (s *Service) SetNotification(ctx context.Context, ref Ref, cfg *NotificationConfiguration) error {
	if cfg == nil {
		return s.setConfig(ctx, ref, false, "", func(st *Stream) { st.Notification = nil })
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if s.Destinations != nil {
		// The URI is not repeated: a broker URI may carry a password.
		if err := s.Destinations.CheckDestination(ctx, cfg.DestinationConfig.Uri); err != nil {
			return invalid("NotificationConfiguration.DestinationConfig.Uri is refused: %v", err)
		}
	}
	return s.setConfig(ctx, ref, true, "notifications are sent for persisted fragments", func(st *Stream) { st.Notification = cfg })
}

// setConfig applies a per-stream configuration change; setting one (not deleting it) needs
// retention, since both features work on persisted fragments (why says which).
func (s *Service) setConfig(ctx context.Context, ref Ref, needsRetention bool, why string, apply func(*Stream)) error {
	_, err := s.mutate(ctx, ref, ErrInvalidArgument, func(st *Stream) error {
		if needsRetention && st.RetentionHours == 0 {
			return fmt.Errorf("%w: stream %s keeps no data (DataRetentionInHours is 0) and %s; raise the retention first with update-data-retention", ErrNoDataRetention, st.Name, why)
		}
		apply(st)
		return nil
	})
	return err
}
