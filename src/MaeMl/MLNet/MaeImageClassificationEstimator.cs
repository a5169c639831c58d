using MaeMl.Data;
using MaeMl.Checkpoints;
using MaeMl.Model;
using MaeMl.Onnx;
using MaeMl.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Transforms.Onnx;
using System.Reflection;
using Google.Protobuf;
using SkiaSharp;

namespace MaeMl.MLNet;

/// <summary>
/// An ML.NET multiclass trainer for images that fine-tunes a MAE ViT with TorchSharp (<see cref="Finetuner"/>, or
/// <see cref="LinearProbe"/> with a frozen encoder). <see cref="Fit"/> hands the rows' images to TorchSharp, trains, exports encoder +
/// head to ONNX and returns a chain of ML.NET's own transformers, so <c>mlContext.Model.Save</c>/<c>Load</c> work without MaeMl:
/// <c>ResizeImages</c> (centre crop) and <c>ExtractPixels</c> (RGB planes, 0..255), <c>ApplyOnnxModel</c> (the model bytes are held
/// by the transformer; its graph ends in the fine-tuned head's logits), then ML.NET's multiclass prediction transformer over the
/// logits with identity weights and zero bias, so <c>Score</c> is exactly their softmax and <c>PredictedLabel</c> their arg-max, a
/// key of the label's type (class i is key i + 1, key values the class names); no second classifier is fitted. Temporary columns are
/// dropped. <see cref="MaeClassifierCatalog.ApplyMaeClassifier"/> builds the same chain from a classifier file. A label that is not a key is mapped with <c>MapValueToKey</c>
/// first (part of the chain). Seed, log and cancellation come from the <see cref="MLContext"/> the catalog belongs to.
/// </summary>
public sealed class MaeImageClassificationEstimator : IEstimator<ITransformer>
{
    const string ResizedColumn = "MaeImageClassification.ResizedImage";
    readonly MaeImageClassificationOptions options;
    readonly MLNetHost host;
    readonly MLContext ml;
    readonly string? startCheckpoint;
    readonly int seed;

    internal MaeImageClassificationEstimator(MaeImageClassificationOptions options, MLNetHost host)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.LabelColumnName)) throw new ArgumentException("The label column name is empty", nameof(options));
        if (string.IsNullOrWhiteSpace(options.ImageColumnName)) throw new ArgumentException("The image column name is empty", nameof(options));
        if (options.StartCheckpoint is null && options.Architecture is null)
            throw new ArgumentException("Give a start checkpoint (MAE-pretrained weights) or an architecture preset to train from scratch", nameof(options));
        startCheckpoint = options.StartCheckpoint is null ? null : Pretrained.MaePretrained.ResolveExisting(options.StartCheckpoint, "start checkpoint");
        if (options.Architecture is not null) MaePresets.Get(options.Architecture);
        if (options.Epochs <= 0 || options.BatchSize <= 0) throw new ArgumentException($"Epochs ({options.Epochs}) and batch size ({options.BatchSize}) must be positive", nameof(options));
        this.options = options;
        this.host = host;
        seed = options.Seed ?? host.NextSeed();
        ml = host.NewContext(seed);
    }

    /// <summary>The working folder of the last <see cref="Fit"/> (images, checkpoints, metrics, <c>classifier.onnx</c>) when
    /// <see cref="MaeImageClassificationOptions.WorkingDirectory"/> was set; null when a temporary folder was used (deleted by <c>Fit</c>).</summary>
    public string? LastWorkingDirectory { get; private set; }

    /// <summary>The fine-tuned TorchSharp classifier file of the last <see cref="Fit"/> (a <see cref="ClassifierCheckpoint"/>, loadable
    /// by <c>maeml eval</c>) when <see cref="MaeImageClassificationOptions.WorkingDirectory"/> was set; otherwise null.</summary>
    public string? LastModelFile { get; private set; }

    /// <summary>Validation metrics of the fine-tuned TorchSharp model after the last epoch of the last <see cref="Fit"/>, when a validation set was given.</summary>
    public Evaluation.ClassificationMetrics? LastValidationMetrics { get; private set; }

#pragma warning disable CS0618 // the obsolete string callback is still honoured for one release
    void Log(string message)
    {
        host.Log(message);
        options.Log?.Invoke(message);
    }
#pragma warning restore CS0618

    bool LabelIsKey(DataViewSchema schema)
    {
        var label = schema.GetColumnOrNull(options.LabelColumnName) ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Could not find label column '{options.LabelColumnName}'");
        return label.Type is KeyDataViewType;
    }

    void CheckImage(DataViewSchema schema)
    {
        var image = schema.GetColumnOrNull(options.ImageColumnName) ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Could not find image column '{options.ImageColumnName}'");
        if (image.Type is not ImageDataViewType)
            throw new ArgumentOutOfRangeException(nameof(schema), $"Schema mismatch for image column '{options.ImageColumnName}': expected an image (MLImage, e.g. from LoadImages), got {image.Type}");
    }

    /// <inheritdoc/>
    public ITransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        CheckImage(input.Schema);
        ITransformer? labelMapper = LabelIsKey(input.Schema) ? null : ml.Transforms.Conversion.MapValueToKey(options.LabelColumnName).Fit(input);
        var keyed = labelMapper?.Transform(input) ?? input;
        var labelType = (KeyDataViewType)keyed.Schema[options.LabelColumnName].Type;
        var classNames = ClassNames(keyed.Schema[options.LabelColumnName], labelType);

        var work = options.WorkingDirectory ?? Path.Combine(Path.GetTempPath(), $"maeml-imgcls-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        LastWorkingDirectory = options.WorkingDirectory is null ? null : work;
        LastModelFile = null;
        int maxSide = 2 * ModelImageSize();
        var trainSamples = new List<ImageSample>();
        var valSamples = new List<ImageSample>();
        try
        {
            var counts = ReadImages(keyed, trainSamples, classNames.Count, maxSide, "training");
            var empty = Enumerable.Range(0, classNames.Count).Where(c => counts[c] == 0).Select(c => classNames[c]).ToList();
            if (counts.Count(n => n > 0) < 2)
                throw new ArgumentException($"Image classification needs images of at least two labels; the data has {counts.Count(n => n > 0)} ({string.Join(", ", classNames.Where((_, c) => counts[c] > 0))})");
            if (empty.Count > 0)
                throw new ArgumentException($"No images for label(s) {string.Join(", ", empty.Select(e => $"'{e}'"))}: every label of the key type needs training images");
            var train = ImageFolder.InMemory("the training IDataView", trainSamples, classNames);
            ImageFolder? val = null;
            if (options.ValidationSet is { } validation)
            {
                CheckImage(validation.Schema);
                var valKeyed = labelMapper?.Transform(validation) ?? validation;
                if (valKeyed.Schema[options.LabelColumnName].Type is not KeyDataViewType valType || valType.Count != labelType.Count)
                    throw new ArgumentException($"The validation set's label column '{options.LabelColumnName}' must have the training labels' key type ({labelType})");
                var valCounts = ReadImages(valKeyed, valSamples, classNames.Count, maxSide, "validation");
                if (valCounts.Sum() > 0) val = ImageFolder.InMemory("the validation IDataView", valSamples, classNames);
            }

            var classifierPath = Train(train, val, Path.Combine(work, "run"));
            byte[] onnx;
            int size;
            var (model, _) = ClassifierCheckpoint.Load(classifierPath);
            using (model)
            {
                var graph = VitEncoderOnnxExporter.BuildClassifier(model, new VitEncoderOnnxOptions { ClassNames = classNames });
                onnx = graph.ToByteArray();
                if (options.WorkingDirectory is not null) VitEncoderOnnxExporter.Save(graph, Path.Combine(work, "classifier.onnx"));
                size = model.Config.Encoder.ImageSize;
            }
            if (options.WorkingDirectory is not null) LastModelFile = classifierPath;
            Log("exported encoder + head to ONNX; Score and PredictedLabel are the softmax and arg-max of its logits");
            var scoring = Scoring(size, onnx, keyed, classNames);
            return labelMapper is null ? scoring : new TransformerChain<ITransformer>(labelMapper, scoring);
        }
        finally
        {
            foreach (var sample in trainSamples.Concat(valSamples)) sample.Image?.Dispose();
            if (options.WorkingDirectory is null)
                try { Directory.Delete(work, recursive: true); }
                catch (IOException e) { Log($"warning: could not delete the temporary folder {work}: {e.Message}"); }
                catch (UnauthorizedAccessException e) { Log($"warning: could not delete the temporary folder {work}: {e.Message}"); }
        }
    }

    /// <summary>The scoring chain (<see cref="ClassifierScoring"/>): resize + pixels, the ONNX classifier, ML.NET's multiclass scorer over the
    /// logits with the label's key type.</summary>
    TransformerChain<ITransformer> Scoring(int size, byte[] onnx, IDataView keyed, IReadOnlyList<string> classNames)
    {
        var device = OnnxDevice.Resolve(options.GpuDeviceId, options.FallbackToCpu, m => Log(m));
        return ClassifierScoring.Fit(ml, keyed, onnx, classNames, size, options.ImageColumnName, ResizedColumn, options.LabelColumnName,
            ClassifierScoring.ScoreColumn, ClassifierScoring.PredictedLabelColumn, device, options.FallbackToCpu);
    }

    EstimatorChain<ITransformer> Preprocessing(EstimatorChain<ITransformer> chain, int size) =>
        ImagePixels.Chain(ml.Transforms, options.ImageColumnName, size, ResizedColumn, EncoderOnnxNames.Pixels, onto: chain);

    string Train(ImageFolder train, ImageFolder? val, string runDir)
    {
        var architecture = options.Architecture is null ? null : MaePresets.Get(options.Architecture);
        var progress = new ConsoleProgress(new LogWriter(Log), TimeSpan.FromSeconds(30));
        using var cancel = host.Watch(options.CancellationToken);
        if (options.FreezeEncoder)
        {
            var probe = new LinearProbe(new LinearProbeOptions
            {
                TrainDir = train.Root, TrainImages = train, ValDir = val?.Root, ValImages = val, OutputDir = runDir, Init = startCheckpoint, Model = architecture, Epochs = options.Epochs,
                WarmupEpochs = Math.Min(10, options.Epochs / 10.0), BatchSize = Math.Max(2, options.BatchSize), BaseLr = options.BaseLearningRate ?? 0.1,
                EvalCropPct = 1.0, Seed = seed, Threads = options.Threads, Device = options.TrainingDevice, Prefetch = 2,
            }, progress, Log).Run(cancel.Token);
            LastValidationMetrics = probe.Validation;
            return probe.CheckpointPath;
        }
        var o = FinetuneOptions.SmallImages(train.Root, runDir) with
        {
            TrainImages = train, ValDir = val?.Root, ValImages = val, Init = startCheckpoint, Model = architecture, Epochs = options.Epochs, WarmupEpochs = Math.Min(5, options.Epochs / 10.0),
            BatchSize = options.BatchSize, BaseLr = options.BaseLearningRate ?? 1e-3, LayerDecay = options.LayerDecay, EvalCropPct = 1.0,
            Seed = seed, Threads = options.Threads, Device = options.TrainingDevice, Prefetch = 2,
        };
        if (options.Recipe is not null) o = options.Recipe(o);
        var result = new Finetuner(o, progress, Log).Run(cancel.Token);
        LastValidationMetrics = result.Validation;
        return result.CheckpointPath;
    }

    static List<string> ClassNames(DataViewSchema.Column label, KeyDataViewType type)
    {
        int count = checked((int)type.Count);
        if (count == 0) throw new ArgumentException($"The label column '{label.Name}' is a key of unknown cardinality; map it with MapValueToKey");
        var names = Enumerable.Range(0, count).Select(i => i.ToString()).ToList();
        if (label.HasKeyValues())
        {
            VBuffer<ReadOnlyMemory<char>> values = default;
            try
            {
                label.GetKeyValues(ref values);
                var dense = values.DenseValues().Select(v => v.ToString()).ToList();
                if (dense.Count == count && dense.Distinct().Count() == count) names = dense;   // PredictedLabel maps index -> name: names must be unique
            }
            catch (InvalidOperationException) { }   // key values of another type: keep the indices
        }
        return names;
    }

    /// <summary>The model's input side as far as it is known without loading weights: a preset's, a .maeml header's, else 224.</summary>
    int ModelImageSize()
    {
        if (startCheckpoint is null) return MaePresets.Get(options.Architecture!).ImageSize;
        try
        {
            if (ClassifierCheckpoint.IsClassifierCheckpoint(startCheckpoint)) return ClassifierCheckpoint.ReadHeader(startCheckpoint).Config.Encoder.ImageSize;
            if (MaeCheckpoint.IsCheckpoint(startCheckpoint)) return MaeCheckpoint.ReadHeader(startCheckpoint).Config.ImageSize;
        }
        catch (InvalidDataException) { }   // the training start reports a bad file with its own message
        return 224;
    }

    /// <summary>Reads each row's image into memory (a bitmap whose longer side is at most <paramref name="maxSide"/>, twice the model's
    /// input: enough for its random crops, small enough to hold a dataset) with its label (key - 1); rows whose image cannot be read or
    /// whose label is missing are logged and skipped. Returns the images per class.</summary>
    int[] ReadImages(IDataView data, List<ImageSample> samples, int numClasses, int maxSide, string what)
    {
        var counts = new int[numClasses];
        var imageColumn = data.Schema[options.ImageColumnName];
        var labelColumn = data.Schema[options.LabelColumnName];
        using var cursor = data.GetRowCursor([imageColumn, labelColumn]);
        var getImage = cursor.GetGetter<MLImage>(imageColumn);
        var getLabel = cursor.GetGetter<uint>(labelColumn);
        int skipped = 0;
        long row = 0;
        while (true)
        {
            try { if (!cursor.MoveNext()) break; }
            catch (Exception e) when (e is InvalidOperationException or IOException or ArgumentException)
            {
                throw new InvalidDataException($"Reading the {what} rows failed at row {row}: {e.Message}", e);
            }
            uint key = 0;
            getLabel(ref key);
            if (key == 0 || key > numClasses) { Skip($"row {row}: missing label"); row++; continue; }
            MLImage image = null!;
            try
            {
                getImage(ref image);
                if (image is null || image.Width <= 0 || image.Height <= 0) { Skip($"row {row}: no image"); row++; continue; }
                var bitmap = Shrink(ImagePixels.ToBitmap(image), maxSide);
                bitmap.SetImmutable();   // read by the loader's threads, never changed
                samples.Add(new ImageSample($"{what} row {row}", (int)key - 1, bitmap));
                counts[key - 1]++;
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or ArgumentException or FormatException)
            {
                Skip($"row {row}: unreadable image ({e.Message})");
            }
            finally { image?.Dispose(); }
            row++;
        }
        if (skipped > 0) Log($"{skipped} {what} row(s) skipped");
        Log($"{counts.Sum()} {what} images held in memory (longer side at most {maxSide} px)");
        return counts;

        void Skip(string why)
        {
            skipped++;
            Log($"warning: skipping {what} {why}");
        }
    }

    /// <summary><paramref name="bitmap"/> itself when its longer side is at most <paramref name="maxSide"/>, else a resized copy (the original is disposed).</summary>
    static SKBitmap Shrink(SKBitmap bitmap, int maxSide)
    {
        int longer = Math.Max(bitmap.Width, bitmap.Height);
        if (longer <= maxSide) return bitmap;
        double scale = (double)maxSide / longer;
        using (bitmap)
            return ImageTransforms.CropResize(bitmap, new SKRect(0, 0, bitmap.Width, bitmap.Height),
                Math.Max(1, (int)Math.Round(bitmap.Width * scale)), Math.Max(1, (int)Math.Round(bitmap.Height * scale)));
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        SchemaShape.Column? Find(string name) => inputSchema.Where(c => c.Name == name).Select(c => (SchemaShape.Column?)c).LastOrDefault();
        var image = Find(options.ImageColumnName) ?? throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Could not find image column '{options.ImageColumnName}'");
        if (image.ItemType is not ImageDataViewType) throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Schema mismatch for image column '{options.ImageColumnName}': expected an image, got {image.ItemType}");
        var label = Find(options.LabelColumnName) ?? throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Could not find label column '{options.LabelColumnName}'");
        var chain = new EstimatorChain<ITransformer>();
        if (!label.IsKey) chain = chain.Append<ITransformer>(ml.Transforms.Conversion.MapValueToKey(options.LabelColumnName));
        // Score is a float vector and PredictedLabel a key of the label's type: stand-in columns of those kinds give the shape
        return Preprocessing(chain, 8)
            .Append<ITransformer>(ml.Transforms.CopyColumns(ClassifierScoring.ScoreColumn, EncoderOnnxNames.Pixels))
            .Append<ITransformer>(ml.Transforms.CopyColumns(ClassifierScoring.PredictedLabelColumn, options.LabelColumnName))
            .Append<ITransformer>(ml.Transforms.DropColumns(ResizedColumn, EncoderOnnxNames.Pixels))
            .GetOutputSchema(inputSchema);
    }

    sealed class LogWriter(Action<string> log) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;
        public override void WriteLine(string? value) => log(value ?? "");
    }
}
