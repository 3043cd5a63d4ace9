package status

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestBackupReadyCondition(t *testing.T) {
	daily, err := cron.ParseStandard("0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(day, hour int) time.Time { return time.Date(2026, 12, day, hour, 0, 0, 0, time.UTC) }
	for name, tc := range map[string]struct {
		in     BackupInput
		status metav1.ConditionStatus
		reason string
		says   string
	}{
		"bad schedule": {BackupInput{ScheduleError: "expected 5 fields"}, metav1.ConditionFalse, "InvalidSchedule", "spec.backup.schedule"},
		"no backup yet, first run ahead": {BackupInput{Schedule: daily, Created: created, Now: at(2, 1)},
			metav1.ConditionUnknown, "FirstBackupPending", "2026-12-02T03:00:00Z"},
		"no backup after two runs": {BackupInput{Schedule: daily, Created: created, Now: at(3, 4)},
			metav1.ConditionFalse, "NoCompletedBackup", "two scheduled runs"},
		"recent": {BackupInput{Schedule: daily, Created: created, Now: at(3, 4), LastCompleted: at(3, 3), LastCompletedSet: "S"},
			metav1.ConditionTrue, "RecentBackup", "set S"},
		"one run missed is tolerated": {BackupInput{Schedule: daily, Created: created, Now: at(4, 2), LastCompleted: at(2, 3)},
			metav1.ConditionTrue, "RecentBackup", ""},
		"two intervals old": {BackupInput{Schedule: daily, Created: created, Now: at(4, 4), LastCompleted: at(2, 3)},
			metav1.ConditionFalse, "BackupOverdue", "older than two schedule intervals"},
		"recent but the latest failed": {BackupInput{Schedule: daily, Created: created, Now: at(3, 4), LastCompleted: at(3, 3), LastFailure: "b: shard 1 failed"},
			metav1.ConditionTrue, "RecentBackup", "the latest backup failed: b: shard 1 failed"},
	} {
		t.Run(name, func(t *testing.T) {
			c := BackupReadyCondition(tc.in)
			if c.Type != TypeBackupReady || c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.says) {
				t.Errorf("got %s %s %s %q, want %s %s containing %q", c.Type, c.Status, c.Reason, c.Message, tc.status, tc.reason, tc.says)
			}
		})
	}
}
