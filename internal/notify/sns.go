package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
)

// SNS message attributes next to the JSON Message, so subscription filter policies can select
// on them and receivers can drop duplicates without parsing the body.
const (
	snsAttrEventID   = "kvsd.EventId"
	snsAttrEventType = "kvsd.NotificationType"
)

// snsTopic publishes to one SNS topic through the AWS SDK, which signs (SigV4) and sends;
// a 200 answer with a MessageId acknowledges the event.
type snsTopic struct {
	arn    string
	fifo   bool
	client *sns.Client
}

func newSNS(cfg *Config, arn string) (*snsTopic, error) {
	parts := strings.SplitN(arn, ":", 6) // arn:aws:sns:<region>:<account>:<topic>
	if len(parts) != 6 || parts[2] != "sns" || parts[3] == "" {
		return nil, fmt.Errorf("%q is not an SNS topic ARN", arn)
	}
	creds := cfg.AWSCredentials
	if creds == nil {
		creds = EnvCredentials(os.Getenv)
	}
	opts := sns.Options{
		Region:      parts[3], // topics are published to in their own region
		Credentials: aws.NewCredentialsCache(creds),
		// The notifier retries with its own backoff, in order; SDK retries inside one attempt
		// would only stretch it past AttemptTimeout.
		RetryMaxAttempts: 1,
	}
	if cfg.SNSEndpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.SNSEndpoint)
	}
	return &snsTopic{arn: arn, fifo: strings.HasSuffix(arn, ".fifo"), client: sns.New(opts)}, nil
}

func (t *snsTopic) send(ctx context.Context, ev *event) error {
	in := &sns.PublishInput{
		TopicArn: aws.String(t.arn),
		Subject:  aws.String(SNSSubject),
		Message:  aws.String(string(ev.Body)),
		MessageAttributes: map[string]types.MessageAttributeValue{
			snsAttrEventID:   {DataType: aws.String("String"), StringValue: aws.String(ev.ID)},
			snsAttrEventType: {DataType: aws.String("String"), StringValue: aws.String(ev.Type)},
		},
	}
	if t.fifo {
		// FIFO topics need a group and deduplicate by id themselves: one group per stream
		// keeps the stream's order.
		in.MessageGroupId, in.MessageDeduplicationId = aws.String(ev.Stream), aws.String(ev.ID)
	}
	out, err := t.client.Publish(ctx, in)
	if err != nil {
		return err
	}
	if out.MessageId == nil || *out.MessageId == "" {
		return errors.New("SNS Publish answered without a MessageId")
	}
	return nil
}

func (t *snsTopic) close() {}

// EnvCredentials is the environment step of the AWS credential chain: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN as getenv reads them. It is what SNS requests are
// signed with when Config.AWSCredentials is nil (with os.Getenv).
func EnvCredentials(getenv func(string) string) aws.CredentialsProvider {
	return envCredentials{getenv: getenv}
}

type envCredentials struct{ getenv func(string) string }

func (e envCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	id, secret := e.getenv("AWS_ACCESS_KEY_ID"), e.getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return aws.Credentials{}, errors.New("no AWS credentials for SNS: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: e.getenv("AWS_SESSION_TOKEN"), Source: "environment"}, nil
}
