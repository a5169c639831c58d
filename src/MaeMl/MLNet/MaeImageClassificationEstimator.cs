using MaeMl.Checkpoints;
using MaeMl.Model;
using MaeMl.Onnx;
using MaeMl.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Transforms.Onnx;
using SkiaSharp;

namespace MaeMl.MLNet;

/// <summary>
/// An ML.NET multiclass trainer for images that fine-tunes a MAE ViT with TorchSharp (<see cref="Finetuner"/>, or
/// <see cref="LinearProbe"/> with a frozen encoder). <see cref="Fit"/> writes the rows' images to a working folder, trains,
/// exports encoder + head to ONNX (<see cref="VitEncoderOnnxExporter.ExportClassifier"/>) and returns a chain of ML.NET's own
/// transformers, so <c>mlContext.Model.Save</c>/<c>Load</c> work without MaeMl: <c>ResizeImages</c> (centre crop) and
/// <c>ExtractPixels</c> (RGB planes, 0..255), <c>ApplyOnnxModel</c> (the fine-tuned logits), then a <c>LbfgsMaximumEntropy</c>
/// stage fitted on those logits, which yields the <c>Score</c> (class probabilities) and <c>PredictedLabel</c> (key) columns of ML.NET
/// classifiers: ONNX outputs always become vector columns in ML.NET and no built-in transformer turns an arg-max vector into a key
/// scalar, so this small softmax layer over the logits (a calibration of the fine-tuned head) is what provides them.
/// Temporary columns are dropped. A label that is not a key is mapped with <c>MapValueToKey</c> first (part of the chain).
/// </summary>
public sealed class MaeImageClassificationEstimator : IEstimator<ITransformer>
{
    const string ResizedColumn = "MaeImageClassification.ResizedImage";
    readonly MaeImageClassificationOptions options;
    readonly MLContext ml;

    internal MaeImageClassificationEstimator(MaeImageClassificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.LabelColumnName)) throw new ArgumentException("The label column name is empty", nameof(options));
        if (string.IsNullOrWhiteSpace(options.ImageColumnName)) throw new ArgumentException("The image column name is empty", nameof(options));
        if (options.StartCheckpoint is null && options.Architecture is null)
            throw new ArgumentException("Give a start checkpoint (MAE-pretrained weights) or an architecture preset to train from scratch", nameof(options));
        if (options.StartCheckpoint is not null && !File.Exists(options.StartCheckpoint))
            throw new FileNotFoundException($"The start checkpoint '{options.StartCheckpoint}' does not exist", options.StartCheckpoint);
        if (options.Architecture is not null) MaePresets.Get(options.Architecture);
        if (options.Epochs <= 0 || options.BatchSize <= 0) throw new ArgumentException($"Epochs ({options.Epochs}) and batch size ({options.BatchSize}) must be positive", nameof(options));
        this.options = options;
        ml = new MLContext(options.Seed);
    }

    /// <summary>The working folder of the last <see cref="Fit"/> (images, checkpoints, metrics, <c>classifier.onnx</c>).</summary>
    public string? LastWorkingDirectory { get; private set; }

    /// <summary>Validation metrics of the fine-tuned TorchSharp model after the last epoch of the last <see cref="Fit"/>, when a validation set was given.</summary>
    public Evaluation.ClassificationMetrics? LastValidationMetrics { get; private set; }

    void Log(string message) => options.Log?.Invoke(message);

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
        LastWorkingDirectory = work;
        var trainDir = Path.Combine(work, "train");
        var written = new List<(string Path, uint Key)>();
        var counts = WriteImages(keyed, trainDir, classNames.Count, "training", written);
        var empty = Enumerable.Range(0, classNames.Count).Where(c => counts[c] == 0).Select(c => classNames[c]).ToList();
        if (counts.Count(n => n > 0) < 2)
            throw new ArgumentException($"Image classification needs images of at least two labels; the data has {counts.Count(n => n > 0)} ({string.Join(", ", classNames.Where((_, c) => counts[c] > 0))})");
        if (empty.Count > 0)
            throw new ArgumentException($"No images for label(s) {string.Join(", ", empty.Select(e => $"'{e}'"))}: every label of the key type needs training images");
        string? valDir = null;
        if (options.ValidationSet is { } validation)
        {
            CheckImage(validation.Schema);
            var valKeyed = labelMapper?.Transform(validation) ?? validation;
            if (valKeyed.Schema[options.LabelColumnName].Type is not KeyDataViewType valType || valType.Count != labelType.Count)
                throw new ArgumentException($"The validation set's label column '{options.LabelColumnName}' must have the training labels' key type ({labelType})");
            valDir = Path.Combine(work, "val");
            var valCounts = WriteImages(valKeyed, valDir, classNames.Count, "validation", null);
            for (int c = 0; c < classNames.Count; c++) Directory.CreateDirectory(Path.Combine(valDir, FolderName(c)));
            if (valCounts.Sum() == 0) valDir = null;
        }

        var classifierPath = Train(trainDir, valDir, Path.Combine(work, "run"), classNames.Count);
        var onnx = Path.Combine(work, "classifier.onnx");
        int size;
        var (model, _) = ClassifierCheckpoint.Load(classifierPath);
        using (model)
        {
            VitEncoderOnnxExporter.ExportClassifier(model, onnx);
            size = model.Config.Encoder.ImageSize;
        }
        Log($"exported encoder + head to {onnx}; fitting the ML.NET scoring stage");

        // the scoring stage is fitted on the images that were readable (ML.NET's own loaders would stop at a bad one), keyed as trained
        var scoring = Scoring(new EstimatorChain<ITransformer>(), size, onnx).Fit(CleanView(written, classNames));
        return labelMapper is null ? scoring : new TransformerChain<ITransformer>(labelMapper, scoring);
    }

    sealed class FitRow
    {
        public string Path { get; set; } = "";
        public uint Label { get; set; }
    }

    const string PathColumn = "MaeImageClassification.Path";

    /// <summary>The written images (<see cref="Microsoft.ML.Data.MLImage"/> column) and their labels as keys with the class names as key values.</summary>
    IDataView CleanView(List<(string Path, uint Key)> rows, IReadOnlyList<string> classNames)
    {
        var definition = SchemaDefinition.Create(typeof(FitRow));
        definition[nameof(FitRow.Path)].ColumnName = PathColumn;
        var label = definition[nameof(FitRow.Label)];
        label.ColumnName = options.LabelColumnName;
        label.ColumnType = new KeyDataViewType(typeof(uint), classNames.Count);
        label.AddAnnotation("KeyValues", new VBuffer<ReadOnlyMemory<char>>(classNames.Count, classNames.Select(n => n.AsMemory()).ToArray()),
            new VectorDataViewType(TextDataViewType.Instance, classNames.Count));
        var view = ml.Data.LoadFromEnumerable(rows.Select(r => new FitRow { Path = r.Path, Label = r.Key }), definition);
        return ml.Transforms.LoadImages(options.ImageColumnName, null, PathColumn).Fit(view).Transform(view);
    }

    EstimatorChain<ITransformer> Scoring(EstimatorChain<ITransformer> chain, int size, string? onnx)
    {
        var t = ml.Transforms;
        chain = chain
            .Append<ITransformer>(t.ResizeImages(ResizedColumn, size, size, options.ImageColumnName, ImageResizingEstimator.ResizingKind.IsoCrop, ImageResizingEstimator.Anchor.Center))
            .Append<ITransformer>(t.ExtractPixels(EncoderOnnxNames.Pixels, ResizedColumn, ImagePixelExtractingEstimator.ColorBits.Rgb,
                ImagePixelExtractingEstimator.ColorsOrder.ARGB, interleavePixelColors: false, offsetImage: 0f, scaleImage: 1f, outputAsFloatArray: true));
        string features = EncoderOnnxNames.Pixels;
        if (onnx is not null)
        {
            chain = chain.Append<ITransformer>(t.ApplyOnnxModel(new OnnxOptions { ModelFile = onnx, InputColumns = [EncoderOnnxNames.Pixels], OutputColumns = [EncoderOnnxNames.Logits] }));
            features = EncoderOnnxNames.Logits;
        }
        chain = chain.Append<ITransformer>(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(options.LabelColumnName, features));
        return chain.Append<ITransformer>(t.DropColumns(onnx is null ? [ResizedColumn, EncoderOnnxNames.Pixels] : [ResizedColumn, EncoderOnnxNames.Pixels, EncoderOnnxNames.Logits]));
    }

    string Train(string trainDir, string? valDir, string runDir, int numClasses)
    {
        var architecture = options.Architecture is null ? null : MaePresets.Get(options.Architecture);
        var progress = new ConsoleProgress(options.Log is null ? TextWriter.Null : new LogWriter(options.Log), TimeSpan.FromSeconds(30));
        if (options.FreezeEncoder)
        {
            var probe = new LinearProbe(new LinearProbeOptions
            {
                TrainDir = trainDir, ValDir = valDir, OutputDir = runDir, Init = options.StartCheckpoint, Model = architecture, Epochs = options.Epochs,
                WarmupEpochs = Math.Min(10, options.Epochs / 10.0), BatchSize = Math.Max(2, options.BatchSize), BaseLr = options.BaseLearningRate ?? 0.1,
                EvalCropPct = 1.0, Seed = options.Seed, Threads = options.Threads, Prefetch = 2,
            }, progress, Log).Run();
            LastValidationMetrics = probe.Validation;
            return probe.CheckpointPath;
        }
        var o = FinetuneOptions.SmallImages(trainDir, runDir) with
        {
            ValDir = valDir, Init = options.StartCheckpoint, Model = architecture, Epochs = options.Epochs, WarmupEpochs = Math.Min(5, options.Epochs / 10.0),
            BatchSize = options.BatchSize, BaseLr = options.BaseLearningRate ?? 1e-3, LayerDecay = options.LayerDecay, EvalCropPct = 1.0,
            Seed = options.Seed, Threads = options.Threads, Prefetch = 2,
        };
        if (options.Recipe is not null) o = options.Recipe(o);
        var result = new Finetuner(o, progress, Log).Run();
        LastValidationMetrics = result.Validation;
        return result.CheckpointPath;
    }

    static string FolderName(int label) => $"c{label:D5}";

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
                if (dense.Count == count) names = dense;
            }
            catch (InvalidOperationException) { }   // key values of another type: keep the indices
        }
        return names;
    }

    /// <summary>Writes each row's image as PNG to dir/cNNNNN/ (NNNNN = key - 1); rows whose image cannot be read or whose label is
    /// missing are logged and skipped. Returns the images per class.</summary>
    int[] WriteImages(IDataView data, string dir, int numClasses, string what, List<(string Path, uint Key)>? written)
    {
        var counts = new int[numClasses];
        for (int c = 0; c < numClasses; c++) Directory.CreateDirectory(Path.Combine(dir, FolderName(c)));
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
                var path = Path.Combine(dir, FolderName((int)key - 1), $"row{row:D8}.png");
                SavePng(image, path);
                counts[key - 1]++;
                written?.Add((path, key));
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or ArgumentException or FormatException)
            {
                Skip($"row {row}: unreadable image ({e.Message})");
            }
            finally { image?.Dispose(); }
            row++;
        }
        if (skipped > 0) Log($"{skipped} {what} row(s) skipped");
        Log($"{counts.Sum()} {what} images written to {dir}");
        return counts;

        void Skip(string why)
        {
            skipped++;
            Log($"warning: skipping {what} {why}");
        }
    }

    static void SavePng(MLImage image, string path)
    {
        var colorType = image.PixelFormat == MLPixelFormat.Bgra32 ? SKColorType.Bgra8888 : SKColorType.Rgba8888;
        using var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, colorType, SKAlphaType.Unpremul));
        var pixels = image.Pixels;
        if (pixels.Length != bitmap.ByteCount) throw new InvalidOperationException($"{pixels.Length} pixel bytes for a {image.Width}x{image.Height} image");
        unsafe { pixels.CopyTo(new Span<byte>((void*)bitmap.GetPixels(), bitmap.ByteCount)); }
        using var encoded = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, encoded.ToArray());
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
        // the ONNX stage changes only the feature vector's size: the shape of the output columns is that of the chain without it
        return Scoring(chain, 8, onnx: null).GetOutputSchema(inputSchema);
    }

    sealed class LogWriter(Action<string> log) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;
        public override void WriteLine(string? value) => log(value ?? "");
    }
}
