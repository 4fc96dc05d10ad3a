"""SPORE term constants, generated from ``spore.ttl`` by ``python -m ontology.generate``.

Do not edit by hand: edit the ontology and regenerate.
"""

from rdflib import URIRef
from rdflib.namespace import DefinedNamespace, Namespace


class SPORE(DefinedNamespace):
    """The SPORE ontology's classes, properties and individuals."""

    _fail = True

    Accusation: URIRef
    AdmissionBehaviour: URIRef
    AggregationBehaviour: URIRef
    AggregationRule: URIRef
    AggregationRuleMutation: URIRef
    Architecture: URIRef
    Behaviour: URIRef
    Blueprint: URIRef
    CodeModule: URIRef
    CoordinateMedian: URIRef
    Coverage: URIRef
    Decision: URIRef
    DefederationDecision: URIRef
    EmbeddingDimensionMutation: URIRef
    Evaluation: URIRef
    FungusNode: URIRef
    HitRate: URIRef
    Host: URIRef
    KnowledgeEntity: URIRef
    KnowledgeLightGCN: URIRef
    Krum: URIRef
    LayersMutation: URIRef
    LearningGroup: URIRef
    LearningRateMutation: URIRef
    LightGCN: URIRef
    LinearModel: URIRef
    Listening: URIRef
    LocalEpochsMutation: URIRef
    MatrixFactorization: URIRef
    Membership: URIRef
    Metric: URIRef
    Model: URIRef
    ModelConfiguration: URIRef
    ModelSnapshot: URIRef
    ModelUpdate: URIRef
    MutationDecision: URIRef
    MutationOperator: URIRef
    MutationRateMutation: URIRef
    NDCG: URIRef
    Option: URIRef
    Policy: URIRef
    ReasoningBehaviour: URIRef
    Recall: URIRef
    Recommendation: URIRef
    RecommendationBehaviour: URIRef
    RecommendedItem: URIRef
    SpawnDecision: URIRef
    StagnationRoundsMutation: URIRef
    SwitchGroupDecision: URIRef
    SwitchMarginMutation: URIRef
    SwitchPatienceMutation: URIRef
    Tagging: URIRef
    TrainingBehaviour: URIRef
    TrainingRound: URIRef
    TrimmedMean: URIRef
    VarianceCorrectedMean: URIRef
    WeightedMean: URIRef
    accusationQuorum: URIRef
    accused: URIRef
    aggregationRule: URIRef
    architecture: URIRef
    artist: URIRef
    batchSize: URIRef
    blockedHost: URIRef
    blueprint: URIRef
    byzantineTolerance: URIRef
    changeNote: URIRef
    choice: URIRef
    chosen: URIRef
    claimed: URIRef
    configuration: URIRef
    cutoff: URIRef
    decidedBy: URIRef
    embeddingDimension: URIRef
    epochs: URIRef
    evaluates: URIRef
    explanation: URIRef
    factor: URIRef
    fanout: URIRef
    forListener: URIRef
    format: URIRef
    group: URIRef
    groupModel: URIRef
    hasTag: URIRef
    hashtag: URIRef
    hostedBy: URIRef
    implements: URIRef
    knowledgeEntity: URIRef
    knowledgeRelation: URIRef
    krumSelection: URIRef
    layers: URIRef
    learningRate: URIRef
    listener: URIRef
    localEpochs: URIRef
    madeWith: URIRef
    maxChildren: URIRef
    maximum: URIRef
    measuredOn: URIRef
    member: URIRef
    memberOf: URIRef
    members: URIRef
    metric: URIRef
    metrics: URIRef
    minimum: URIRef
    moduleId: URIRef
    mutates: URIRef
    mutationRate: URIRef
    nodeName: URIRef
    outlierThreshold: URIRef
    playCount: URIRef
    policy: URIRef
    quantize: URIRef
    revision: URIRef
    roundNumber: URIRef
    roundTimeout: URIRef
    samples: URIRef
    schedule: URIRef
    score: URIRef
    seed: URIRef
    seedArtist: URIRef
    seeksHashtag: URIRef
    sentRowFraction: URIRef
    sha256: URIRef
    sharedShapes: URIRef
    since: URIRef
    snapshotOf: URIRef
    split: URIRef
    stagnationRounds: URIRef
    step: URIRef
    switchMargin: URIRef
    switchPatience: URIRef
    tag: URIRef
    target: URIRef
    trainingData: URIRef
    trainingSeconds: URIRef
    trains: URIRef
    trimmedFraction: URIRef
    usesModule: URIRef
    value: URIRef
    weighed: URIRef
    weightDecay: URIRef

    _NS = Namespace("https://w3id.org/spore/ns#")
