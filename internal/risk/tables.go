package risk

import "github.com/medseg/medseg/api/v1alpha1"

// The CERT/CC SSVC deployer decision table, "Defer, Scheduled, Out-of-Cycle, Immediate" v1.0.0
// (patch application priority 1.0.0), carried in code so the engine needs no file at run time.
// shared/reference/ssvc holds the published CSV; TestDeployerTableMatchesReference checks all
// 72 rows against it.
//
// Index: [exploitation][exposure][automatable] → four letters, one per Human Impact
// (Low, Medium, High, VeryHigh): D=Defer S=Scheduled O=OutOfCycle I=Immediate.
var deployerTable = [3][3][2]string{
	ExploitNone: {
		ExposureSmall:      {"DDSS", "DSSS"},
		ExposureControlled: {"DSSS", "SSSS"},
		ExposureOpen:       {"DSSS", "SSSO"},
	},
	ExploitPoC: {
		ExposureSmall:      {"DSSS", "SSSS"},
		ExposureControlled: {"DSSS", "SSSO"},
		ExposureOpen:       {"SSSO", "SSOO"},
	},
	ExploitActive: {
		ExposureSmall:      {"SSOO", "SOOO"},
		ExposureControlled: {"SSOO", "OOOO"},
		ExposureOpen:       {"SOOI", "OOII"},
	},
}

// The CERT/CC SSVC Human Impact table v2.0.2: [safety][mission] → Human Impact.
var humanImpactTable = [4][4]HumanImpact{
	//            Degraded     Crippled     MEFFailure   MissionFailure
	/*Negligible*/ {ImpactLow, ImpactLow, ImpactMedium, ImpactVeryHigh},
	/*Marginal*/ {ImpactLow, ImpactLow, ImpactMedium, ImpactVeryHigh},
	/*Critical*/ {ImpactMedium, ImpactHigh, ImpactHigh, ImpactVeryHigh},
	/*Catastrophic*/ {ImpactVeryHigh, ImpactVeryHigh, ImpactVeryHigh, ImpactVeryHigh},
}

func letterPriority(b byte) v1alpha1.Priority {
	switch b {
	case 'D':
		return v1alpha1.PriorityDefer
	case 'S':
		return v1alpha1.PriorityScheduled
	case 'O':
		return v1alpha1.PriorityOutOfCycle
	default:
		return v1alpha1.PriorityImmediate
	}
}

// Decide is the SSVC deployer decision for one set of inputs. Out-of-range values are clamped to
// the most severe level, so a corrupt input never lowers the priority.
func Decide(e ExploitLevel, x Exposure, automatable bool, h HumanImpact) v1alpha1.Priority {
	a := 0
	if automatable {
		a = 1
	}
	return letterPriority(deployerTable[clamp(int(e), 2)][clamp(int(x), 2)][a][clamp(int(h), 3)])
}

// HumanImpactOf maps safety and mission impact to SSVC Human Impact. Unknown values count as
// the most severe.
func HumanImpactOf(s v1alpha1.SafetyImpact, m v1alpha1.MissionImpact) HumanImpact {
	si := map[v1alpha1.SafetyImpact]int{v1alpha1.SafetyNegligible: 0, v1alpha1.SafetyMarginal: 1, v1alpha1.SafetyCritical: 2}
	mi := map[v1alpha1.MissionImpact]int{v1alpha1.MissionDegraded: 0, v1alpha1.MissionCrippled: 1, v1alpha1.MissionMEFFailure: 2}
	row, ok := si[s]
	if !ok {
		row = 3
	}
	col, ok := mi[m]
	if !ok {
		col = 3
	}
	return humanImpactTable[row][col]
}

func clamp(v, hi int) int {
	if v < 0 || v > hi {
		return hi
	}
	return v
}
