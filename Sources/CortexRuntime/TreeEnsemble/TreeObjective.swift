import Foundation

/// How an XGBoost objective turns summed tree margins into predictions.
enum TreeObjective: Sendable, Equatable {
    /// Margins are the prediction (squared error and friends, `binary:logitraw`).
    case identity
    /// Logistic sigmoid of the margin (`binary:logistic`, `reg:logistic`).
    case logistic
    /// Exponential of the margin (`count:poisson`, `reg:gamma`, `reg:tweedie`).
    case exponential
    /// 0 or 1 by the margin's sign (`binary:hinge`).
    case hinge
    /// Softmax over classes, one probability per class (`multi:softprob`).
    case softprob
    /// The index of the largest class margin (`multi:softmax`).
    case softmax

    /// The objectives this backend understands, by XGBoost's names.
    static let supported: [String: (objective: TreeObjective, baseMargin: BaseMargin)] = [
        "reg:squarederror": (.identity, .identity),
        "reg:linear": (.identity, .identity),
        "reg:squaredlogerror": (.identity, .identity),
        "reg:pseudohubererror": (.identity, .identity),
        "reg:absoluteerror": (.identity, .identity),
        "binary:logitraw": (.identity, .logit),
        "binary:logistic": (.logistic, .logit),
        "reg:logistic": (.logistic, .logit),
        "binary:hinge": (.hinge, .identity),
        "count:poisson": (.exponential, .log),
        "reg:gamma": (.exponential, .log),
        "reg:tweedie": (.exponential, .log),
        "multi:softprob": (.softprob, .identity),
        "multi:softmax": (.softmax, .identity),
    ]

    /// How XGBoost maps the stored `base_score` into margin space.
    enum BaseMargin: Sendable {
        case identity, logit, log

        func margin(_ score: Float) -> Float {
            switch self {
            case .identity: score
            case .logit: -logf(1 / score - 1)
            case .log: logf(score)
            }
        }
    }

    /// Transforms one row's margins (one per output group) in place, as XGBoost's `PredTransform` does.
    func transform(_ margins: inout [Float]) {
        switch self {
        case .identity:
            return
        case .logistic:
            for index in margins.indices {
                margins[index] = 1 / (1 + expf(-margins[index]))
            }
        case .exponential:
            for index in margins.indices {
                margins[index] = expf(margins[index])
            }
        case .hinge:
            for index in margins.indices {
                margins[index] = margins[index] > 0 ? 1 : 0
            }
        case .softprob:
            let largest = margins.max() ?? 0
            var sum: Float = 0
            for index in margins.indices {
                margins[index] = expf(margins[index] - largest)
                sum += margins[index]
            }
            for index in margins.indices {
                margins[index] /= sum
            }
        case .softmax:
            var best = 0
            for index in margins.indices where margins[index] > margins[best] {
                best = index
            }
            margins = [Float(best)]
        }
    }
}
