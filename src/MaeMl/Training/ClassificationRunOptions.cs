using MaeMl.Data;
using MaeMl.Model;

namespace MaeMl.Training;

/// <summary>What the classification runs (<see cref="FinetuneOptions"/>, <see cref="LinearProbeOptions"/>) share: the labelled data
/// (class folders or images held in memory), the output folder, the starting weights or architecture, the seed, prefetching and threads.</summary>
public abstract record ClassificationRunOptions
{
    /// <summary>Training images in class folders (<c>root/&lt;class&gt;/*.jpg</c>).</summary>
    public required string TrainDir { get; init; }
    /// <summary>Validation images in the same class folders, evaluated after every epoch; null for none.</summary>
    public string? ValDir { get; init; }
    /// <summary>Training images held in memory (<see cref="ImageFolder.InMemory"/>, e.g. an ML.NET <c>IDataView</c>'s rows), used instead of
    /// reading <see cref="TrainDir"/> (which then only names them); not written to run.json.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public ImageFolder? TrainImages { get; init; }
    /// <summary>Validation images held in memory, used instead of <see cref="ValDir"/>; not written to run.json.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public ImageFolder? ValImages { get; init; }
    /// <summary>Where checkpoints, metrics.jsonl, curves and the evaluation go.</summary>
    public required string OutputDir { get; init; }
    /// <summary>Starting weights: anything <see cref="Interop.MaeModelFile.LoadClassifier(string, Interop.MaeLoadOptions?)"/> reads (a .maeml
    /// pretraining or classifier checkpoint, official .pth, safetensors); null to train from scratch with <see cref="Model"/>.</summary>
    public string? Init { get; init; }
    /// <summary>Architecture for training from scratch; with <see cref="Init"/> it supplies the heads when the file cannot (e.g. a preset's).</summary>
    public MaeConfig? Model { get; init; }
    /// <summary>Seeds the initial weights of new parts, data order, augmentation, mixup and drop path (<c>--seed</c>, default 0).</summary>
    public int Seed { get; init; }
    /// <summary>Use at most this many images per class (evenly spaced), for quick runs.</summary>
    public int? LimitPerClass { get; init; }
    /// <summary>Use at most this many validation images per class (evenly spaced).</summary>
    public int? ValLimitPerClass { get; init; }
    /// <summary>Batches decoded ahead (default 4).</summary>
    public int Prefetch { get; init; } = 4;
    /// <summary>Torch intra-op threads (0: library default).</summary>
    public int Threads { get; init; }
    /// <summary>Training device: <c>cpu</c> (default), <c>cuda</c> or <c>cuda:N</c> (needs a CUDA LibTorch package instead of TorchSharp-cpu;
    /// untested on GPUs by MaeMl's own tests).</summary>
    public string Device { get; init; } = "cpu";
}
