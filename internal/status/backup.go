package status

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of backups and the restore at creation (README.md, "Backups
// and restore"). Neither is part of Ready: a platform serves without a recent
// backup, and alerting on BackupReady is how one learns it has none.
const (
	TypeBackupReady = "BackupReady"
	// TypeRestored is set only on a platform with spec.database.restore:
	// False while the shards are being filled (and nothing else starts),
	// True once every shard is restored.
	TypeRestored = "Restored"
)

// Schedule is the part of a cron schedule BackupReady needs: the next run
// after a time.
type Schedule interface {
	Next(time.Time) time.Time
}

// BackupInput is what the schedule reconciler saw of a platform's backups.
type BackupInput struct {
	// ScheduleError is why spec.backup.schedule does not parse ("" when it does).
	ScheduleError string
	Schedule      Schedule
	// Created is the platform's creation time: the first backup is not
	// overdue before two runs have passed since.
	Created time.Time
	// LastCompleted and LastCompletedSet are the newest Completed backup
	// (zero when there is none).
	LastCompleted    time.Time
	LastCompletedSet string
	// LastFailure is the message of the newest backup when it Failed.
	LastFailure string
	Now         time.Time
}

// StaleAt is when a set completed at t becomes older than two schedule
// intervals, the interval being the one that follows t (cron intervals
// vary: a "0 3 * * 1-5" schedule has a 72-hour one over each weekend).
func StaleAt(s Schedule, t time.Time) time.Time {
	next := s.Next(t)
	return t.Add(2 * s.Next(next).Sub(next))
}

// BackupReadyCondition is True while the newest complete set is younger
// than two schedule intervals: one missed run is tolerated (a run may be
// waiting for the one before), two are not.
func BackupReadyCondition(in BackupInput) metav1.Condition {
	c := metav1.Condition{Type: TypeBackupReady}
	switch {
	case in.ScheduleError != "":
		c.Status, c.Reason = metav1.ConditionFalse, "InvalidSchedule"
		c.Message = "spec.backup.schedule: " + in.ScheduleError
	case in.LastCompleted.IsZero():
		due := in.Schedule.Next(in.Schedule.Next(in.Created))
		if in.Now.Before(due) {
			c.Status, c.Reason = metav1.ConditionUnknown, "FirstBackupPending"
			c.Message = fmt.Sprintf("no backup has completed yet; the first runs at %s", in.Schedule.Next(in.Created).UTC().Format(time.RFC3339))
		} else {
			c.Status, c.Reason = metav1.ConditionFalse, "NoCompletedBackup"
			c.Message = "no backup has completed although two scheduled runs have passed"
		}
	default:
		stale := StaleAt(in.Schedule, in.LastCompleted)
		c.Message = fmt.Sprintf("newest complete set %s, completed at %s", in.LastCompletedSet, in.LastCompleted.UTC().Format(time.RFC3339))
		if in.Now.Before(stale) {
			c.Status, c.Reason = metav1.ConditionTrue, "RecentBackup"
		} else {
			c.Status, c.Reason = metav1.ConditionFalse, "BackupOverdue"
			c.Message += ": older than two schedule intervals"
		}
	}
	if in.LastFailure != "" && c.Status != metav1.ConditionUnknown {
		c.Message += "; the latest backup failed: " + in.LastFailure
	}
	return c
}
