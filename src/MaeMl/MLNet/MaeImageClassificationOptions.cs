using MaeMl.Training;
using Microsoft.Extensions.Logging;
using Microsoft.ML;

namespace MaeMl.MLNet;

/// <summary>Settings of the ML.NET image classification trainer built on MAE fine-tuning
/// (<see cref="MaeImageClassificationCatalog.MaeImageClassification(MulticlassClassificationCatalog.MulticlassClassificationTrainers, MaeImageClassificationOptions)"/>).</summary>
public sealed class MaeImageClassificationOptions
{
    /// <summary>Label column: a key (from <c>MapValueToKey</c>, as ML.NET trainers take it) or any type <c>MapValueToKey</c> accepts
    /// (then the trainer maps it to a key itself). Default <c>Label</c>.</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>Image column (<see cref="Microsoft.ML.Data.MLImage"/>, e.g. from <c>LoadImages</c>). Default <c>Image</c>.</summary>
    public string ImageColumnName { get; set; } = "Image";

    /// <summary>Starting weights: a MaeMl pretraining or classifier checkpoint, an official MAE .pth, or safetensors, or the name of a
    /// model MaeMl ships (e.g. <c>cifar10-vit-tiny</c>, found as <see cref="Pretrained.MaePretrained.Load(string, Interop.MaeLoadOptions?)"/>
    /// finds it). Null trains <see cref="Architecture"/> from scratch.</summary>
    public string? StartCheckpoint { get; set; }

    /// <summary>A <see cref="Model.MaePresets"/> name: the architecture from scratch, or the heads for a checkpoint that cannot tell them.</summary>
    public string? Architecture { get; set; }

    /// <summary>Where the model trains in TorchSharp: <c>cpu</c> (default), <c>cuda</c> or <c>cuda:N</c> (needs a CUDA LibTorch package
    /// instead of TorchSharp-cpu; untested on GPUs here). Scoring in ML.NET uses <see cref="GpuDeviceId"/>.</summary>
    public string TrainingDevice { get; set; } = "cpu";

    /// <summary>Training epochs. Default 10.</summary>
    public int Epochs { get; set; } = 10;
    /// <summary>Images per step. Default 32.</summary>
    public int BatchSize { get; set; } = 32;
    /// <summary>Base lr (lr = blr x batch / 256). Fine-tuning default 1e-3; with <see cref="FreezeEncoder"/> the linear probe's 0.1 is used unless set.</summary>
    public double? BaseLearningRate { get; set; }
    /// <summary>Layer-wise lr decay of fine-tuning. Default 0.75.</summary>
    public double LayerDecay { get; set; } = 0.75;
    /// <summary>Train only a linear head on the frozen encoder (<see cref="LinearProbe"/>) instead of fine-tuning everything.</summary>
    public bool FreezeEncoder { get; set; }
    /// <summary>Rows (same columns) evaluated after every epoch; the metrics are logged and kept in <see cref="WorkingDirectory"/>.</summary>
    public IDataView? ValidationSet { get; set; }
    /// <summary>Seed of initialisation, data order and augmentation. Null (default): drawn from the <see cref="MLContext"/> the trainer
    /// was created from, so <c>new MLContext(seed: 1)</c> makes the run reproducible.</summary>
    public int? Seed { get; set; }
    /// <summary>Further changes to the fine-tuning recipe (augmentation, mixup, drop path, warmup ...), applied last.</summary>
    public Func<FinetuneOptions, FinetuneOptions>? Recipe { get; set; }
    /// <summary>Folder for the images handed to TorchSharp, checkpoints, metrics and the exported ONNX model, kept after <c>Fit</c>.
    /// Null (default): a new folder under the temp path, deleted when <c>Fit</c> returns (the fitted transformer holds the ONNX
    /// model in memory, so nothing of it is needed afterwards).</summary>
    public string? WorkingDirectory { get; set; }
    /// <summary>Torch threads (0: library default).</summary>
    public int Threads { get; set; }
    /// <summary>CUDA device for scoring with ONNX Runtime (needs the <c>Microsoft.ML.OnnxRuntime.Gpu</c> native package), or null for
    /// the CPU. Training runs in TorchSharp on the CPU.</summary>
    public int? GpuDeviceId { get; set; }
    /// <summary>Score on the CPU when the GPU cannot be used (also when the CPU-only ONNX Runtime package is referenced). Default true.</summary>
    public bool FallbackToCpu { get; set; } = true;
    /// <summary>Progress lines also go here (they always go to <c>MLContext.Log</c>). Null: only the context's log.</summary>
    public ILogger? Logger { get; set; }
    /// <summary>Stops training early (as <c>MLContext.CancelExecution()</c> does): <c>Fit</c> throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken CancellationToken { get; set; }
    /// <summary>Receives progress lines (superseded by <see cref="Logger"/> and <c>MLContext.Log</c>; kept for one release).</summary>
    [Obsolete("Use Logger (Microsoft.Extensions.Logging) or MLContext.Log")]
    public Action<string>? Log { get; set; }
}
