package kvsapi

import (
	"context"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/stream"
)

// streamRef is the StreamName|StreamARN pair most operations take.
type streamRef struct {
	StreamName string `json:"StreamName"`
	StreamARN  string `json:"StreamARN"`
}

func (r streamRef) ref() stream.Ref { return stream.Ref{Name: r.StreamName, ARN: r.StreamARN} }

// streamInfo is the StreamInfo shape; absent strings are null, as the real service sends them.
type streamInfo struct {
	DeviceName           *string     `json:"DeviceName"`
	StreamName           string      `json:"StreamName"`
	StreamARN            string      `json:"StreamARN"`
	MediaType            *string     `json:"MediaType"`
	KmsKeyId             string      `json:"KmsKeyId"`
	Version              string      `json:"Version"`
	Status               string      `json:"Status"`
	CreationTime         awsapi.Time `json:"CreationTime"`
	DataRetentionInHours int         `json:"DataRetentionInHours"`
}

func toStreamInfo(s *stream.Stream) streamInfo {
	return streamInfo{
		DeviceName: nullable(s.DeviceName), StreamName: s.Name, StreamARN: s.ARN,
		MediaType: nullable(s.MediaType), KmsKeyId: s.KmsKeyID, Version: s.Version, Status: string(s.Status),
		CreationTime: awsapi.Time{Time: s.CreationTime}, DataRetentionInHours: s.RetentionHours,
	}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type storageConfig struct {
	DefaultStorageTier *string `json:"DefaultStorageTier"`
}

// controlPlane returns the JSON operations of the kinesisvideo control plane.
func (h *Handler) controlPlane() map[string]opFunc {
	svc := h.streams
	return map[string]opFunc{
		"createStream": decode(func(ctx context.Context, in *struct {
			StreamName                 string            `json:"StreamName"`
			DeviceName                 *string           `json:"DeviceName"`
			MediaType                  *string           `json:"MediaType"`
			KmsKeyId                   *string           `json:"KmsKeyId"`
			DataRetentionInHours       *int              `json:"DataRetentionInHours"`
			Tags                       map[string]string `json:"Tags"`
			StreamStorageConfiguration *storageConfig    `json:"StreamStorageConfiguration"`
		}) (any, error) {
			ci := stream.CreateInput{Name: in.StreamName, DeviceName: in.DeviceName, MediaType: in.MediaType,
				KmsKeyID: in.KmsKeyId, RetentionHours: in.DataRetentionInHours, Tags: in.Tags}
			if c := in.StreamStorageConfiguration; c != nil {
				if c.DefaultStorageTier == nil {
					return nil, awsapi.InvalidArgument("StreamStorageConfiguration.DefaultStorageTier is required")
				}
				ci.StorageTier = c.DefaultStorageTier
			}
			st, err := svc.Create(ctx, ci)
			if err != nil {
				return nil, err
			}
			return map[string]string{"StreamARN": st.ARN}, nil
		}),
		"describeStream": decode(func(ctx context.Context, in *streamRef) (any, error) {
			st, err := svc.Describe(ctx, in.ref())
			if err != nil {
				return nil, err
			}
			return map[string]any{"StreamInfo": toStreamInfo(st)}, nil
		}),
		"listStreams": decode(func(ctx context.Context, in *struct {
			MaxResults          *int   `json:"MaxResults"`
			NextToken           string `json:"NextToken"`
			StreamNameCondition *struct {
				ComparisonOperator string `json:"ComparisonOperator"`
				ComparisonValue    string `json:"ComparisonValue"`
			} `json:"StreamNameCondition"`
		}) (any, error) {
			prefix := ""
			if c := in.StreamNameCondition; c != nil {
				if c.ComparisonOperator != "" && c.ComparisonOperator != "BEGINS_WITH" {
					return nil, awsapi.InvalidArgument("StreamNameCondition.ComparisonOperator %q is not supported; the only operator is BEGINS_WITH", c.ComparisonOperator)
				}
				if c.ComparisonValue != "" {
					if err := stream.ValidateName("StreamNameCondition.ComparisonValue", c.ComparisonValue); err != nil {
						return nil, err
					}
				}
				prefix = c.ComparisonValue
			}
			page, err := svc.List(ctx, prefix, in.MaxResults, in.NextToken)
			if err != nil {
				return nil, err
			}
			infos := make([]streamInfo, 0, len(page.Streams))
			for _, st := range page.Streams {
				infos = append(infos, toStreamInfo(st))
			}
			return struct {
				StreamInfoList []streamInfo `json:"StreamInfoList"`
				NextToken      *string      `json:"NextToken"`
			}{infos, nullable(page.NextToken)}, nil
		}),
		"deleteStream": decode(func(ctx context.Context, in *struct {
			StreamARN      string  `json:"StreamARN"`
			CurrentVersion *string `json:"CurrentVersion"`
		}) (any, error) {
			return nil, svc.Delete(ctx, in.StreamARN, in.CurrentVersion)
		}),
		"updateStream": decode(func(ctx context.Context, in *struct {
			streamRef
			CurrentVersion string  `json:"CurrentVersion"`
			DeviceName     *string `json:"DeviceName"`
			MediaType      *string `json:"MediaType"`
		}) (any, error) {
			return nil, svc.Update(ctx, in.ref(), in.CurrentVersion, in.DeviceName, in.MediaType)
		}),
		"updateDataRetention": decode(func(ctx context.Context, in *struct {
			streamRef
			CurrentVersion             string `json:"CurrentVersion"`
			Operation                  string `json:"Operation"`
			DataRetentionChangeInHours *int   `json:"DataRetentionChangeInHours"`
		}) (any, error) {
			return nil, svc.UpdateRetention(ctx, in.ref(), in.CurrentVersion, in.Operation, in.DataRetentionChangeInHours)
		}),
		"getDataEndpoint": decode(func(ctx context.Context, in *struct {
			streamRef
			APIName string `json:"APIName"`
		}) (any, error) {
			ep, err := svc.DataEndpoint(ctx, in.ref(), in.APIName)
			if err != nil {
				return nil, err
			}
			return map[string]string{"DataEndpoint": ep}, nil
		}),
		"tagStream": decode(func(ctx context.Context, in *struct {
			streamRef
			Tags map[string]string `json:"Tags"`
		}) (any, error) {
			return nil, svc.Tag(ctx, in.ref(), in.Tags)
		}),
		"untagStream": decode(func(ctx context.Context, in *struct {
			streamRef
			TagKeyList []string `json:"TagKeyList"`
		}) (any, error) {
			return nil, svc.Untag(ctx, in.ref(), in.TagKeyList)
		}),
		"listTagsForStream": decode(func(ctx context.Context, in *struct {
			streamRef
			NextToken string `json:"NextToken"`
		}) (any, error) {
			if len(in.NextToken) > 512 {
				return nil, awsapi.InvalidArgument("NextToken must be at most 512 characters")
			}
			tags, err := svc.Tags(ctx, in.ref())
			if err != nil {
				return nil, err
			}
			// At most 50 tags: always one page.
			return struct {
				Tags      map[string]string `json:"Tags"`
				NextToken *string           `json:"NextToken"`
			}{Tags: tags}, nil
		}),
		"updateImageGenerationConfiguration": decode(func(ctx context.Context, in *struct {
			streamRef
			ImageGenerationConfiguration *stream.ImageGenerationConfiguration `json:"ImageGenerationConfiguration"`
		}) (any, error) {
			return nil, svc.SetImageGeneration(ctx, in.ref(), in.ImageGenerationConfiguration)
		}),
		"describeImageGenerationConfiguration": decode(func(ctx context.Context, in *streamRef) (any, error) {
			st, err := svc.Describe(ctx, in.ref())
			if err != nil {
				return nil, err
			}
			return struct {
				ImageGenerationConfiguration *stream.ImageGenerationConfiguration `json:"ImageGenerationConfiguration,omitempty"`
			}{st.ImageGeneration}, nil
		}),
		"updateNotificationConfiguration": decode(func(ctx context.Context, in *struct {
			streamRef
			NotificationConfiguration *stream.NotificationConfiguration `json:"NotificationConfiguration"`
		}) (any, error) {
			return nil, svc.SetNotification(ctx, in.ref(), in.NotificationConfiguration)
		}),
		"describeNotificationConfiguration": decode(func(ctx context.Context, in *streamRef) (any, error) {
			st, err := svc.Describe(ctx, in.ref())
			if err != nil {
				return nil, err
			}
			return struct {
				NotificationConfiguration *stream.NotificationConfiguration `json:"NotificationConfiguration,omitempty"`
			}{st.Notification}, nil
		}),
		"updateStreamStorageConfiguration": decode(func(ctx context.Context, in *struct {
			streamRef
			CurrentVersion             string         `json:"CurrentVersion"`
			StreamStorageConfiguration *storageConfig `json:"StreamStorageConfiguration"`
		}) (any, error) {
			if in.StreamStorageConfiguration == nil {
				return nil, awsapi.InvalidArgument("StreamStorageConfiguration is required")
			}
			return nil, svc.UpdateStorage(ctx, in.ref(), in.CurrentVersion, in.StreamStorageConfiguration.DefaultStorageTier)
		}),
		"describeStreamStorageConfiguration": decode(func(ctx context.Context, in *streamRef) (any, error) {
			st, err := svc.Describe(ctx, in.ref())
			if err != nil {
				return nil, err
			}
			return map[string]any{"StreamName": st.Name, "StreamARN": st.ARN,
				"StreamStorageConfiguration": map[string]string{"DefaultStorageTier": st.StorageTier}}, nil
		}),
	}
}
