package pipeline

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/objstore"
)

// Class is what a failure means for the message being handled.
type Class struct {
	// Permanent: doing the same again can never succeed; the message goes to the dead-letter
	// topic with Reason. Otherwise the failure is transient: the operation is retried with
	// backoff, bounded by the stage's context, and the component is not ready meanwhile.
	Permanent bool
	Reason    contract.Reason
}

var transient = Class{}

func permanent(r contract.Reason) Class { return Class{Permanent: true, Reason: r} }

// Classify is the one error classification every stage uses. Permanent:
//   - a *Reject (the stage's own refusal), and errors wrapping contract.ErrInvalidID,
//     contract.ErrSchema or contract.ErrForbiddenObject;
//   - what the image header check refuses (imageinfo), an object that does not exist;
//   - Kafka: a message too large for the writer or the broker (MESSAGE_TOO_LARGE), an
//     authorization failure, and any error kafka-go does not call temporary;
//   - object storage: access denied or bad credentials, an invalid bucket or key name, an
//     entity over the size limit, any other 4xx but throttling, timeouts and conflicts;
//   - Redis: NOAUTH, WRONGPASS, NOPERM.
//
// Everything else — an unreachable server, a timeout, a 5xx, a leader election, the stage's
// own context ending — is transient.
func Classify(err error) Class {
	if err == nil {
		return transient
	}
	var rej *Reject
	if errors.As(err, &rej) {
		return permanent(rej.Reason)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return transient
	}
	switch {
	case errors.Is(err, contract.ErrInvalidID):
		return permanent(contract.ReasonInvalidID)
	case errors.Is(err, contract.ErrSchema):
		return permanent(contract.ReasonSchemaViolation)
	case errors.Is(err, contract.ErrForbiddenObject):
		return permanent(contract.ReasonForbidden)
	case errors.Is(err, objstore.ErrInvalidName):
		return permanent(contract.ReasonInvalidRequest)
	}
	if r, ok := RejectReason(err); ok {
		return permanent(r)
	}
	// kafka-go reports a batch's broker errors as WriteErrors, one per message.
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil {
				return Classify(e)
			}
		}
		return transient
	}
	if errors.As(err, new(kafka.MessageTooLargeError)) {
		return permanent(contract.ReasonOversizedMessage)
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafka.MessageSizeTooLarge, kafka.RecordListTooLarge:
			return permanent(contract.ReasonOversizedMessage)
		case kafka.TopicAuthorizationFailed, kafka.GroupAuthorizationFailed, kafka.ClusterAuthorizationFailed,
			kafka.SASLAuthenticationFailed, kafka.TransactionalIDAuthorizationFailed:
			return permanent(contract.ReasonForbidden)
		}
		if !ke.Temporary() {
			return permanent(contract.ReasonInvalidRequest)
		}
		return transient
	}
	var me minio.ErrorResponse
	if errors.As(err, &me) {
		return classifyS3(me)
	}
	var re redis.Error
	if errors.As(err, &re) && !errors.Is(err, redis.Nil) {
		msg := re.Error()
		for _, p := range []string{"NOAUTH", "WRONGPASS", "NOPERM"} {
			if strings.HasPrefix(msg, p) {
				return permanent(contract.ReasonForbidden)
			}
		}
	}
	return transient
}

func classifyS3(e minio.ErrorResponse) Class {
	switch e.Code {
	case "NoSuchKey", "NoSuchBucket":
		return permanent(contract.ReasonMissingObject)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "AccountProblem":
		return permanent(contract.ReasonForbidden)
	case "EntityTooLarge":
		return permanent(contract.ReasonTooLarge)
	case "InvalidBucketName", "XMinioInvalidObjectName", "KeyTooLongError", "InvalidObjectName", "InvalidArgument":
		return permanent(contract.ReasonInvalidRequest)
	case "SlowDown", "SlowDownRead", "SlowDownWrite", "RequestTimeout", "RequestTimeTooSkewed", "OperationAborted",
		"XMinioServerNotInitialized", "ServiceUnavailable", "InternalError":
		return transient
	}
	switch {
	case e.StatusCode == http.StatusForbidden || e.StatusCode == http.StatusUnauthorized:
		return permanent(contract.ReasonForbidden)
	case e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusConflict ||
		e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusPreconditionFailed:
		return transient
	case e.StatusCode >= 400 && e.StatusCode < 500:
		return permanent(contract.ReasonInvalidRequest)
	}
	return transient
}

// rejectOf turns a permanent failure into the Reject that dead-letters it.
func rejectOf(err error) (*Reject, bool) {
	var rej *Reject
	if errors.As(err, &rej) {
		return rej, true
	}
	if c := Classify(err); c.Permanent {
		return &Reject{Reason: c.Reason, Err: err}, true
	}
	return nil, false
}

// IsPermanent reports whether err is permanent by Classify.
func IsPermanent(err error) bool { return Classify(err).Permanent }
