using MaeMl.Interop;
using MaeMl.Model;
using MaeMl.Segmentation;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using static TorchSharp.torch;

namespace MaeMl.MLNet;

/// <summary>
/// ML.NET trainer for semantic segmentation with a MAE ViT (linear or FPN-lite pyramid head, <see cref="SegmentationModel"/>). In: an
/// image column and a mask column, both <see cref="MLImage"/> (e.g. <c>LoadImages</c> of the images and of single-channel PNG masks
/// whose pixel value is the class id; <see cref="MaeSemanticSegmentationOptions.IgnoreValue"/> marks unlabelled pixels). <see cref="Fit"/>
/// stretches the images to the model's W x H size (<see cref="MaeConfig.InputSize"/>) with the chain's own <c>ResizeImages(width, height)</c>
/// + <c>ExtractPixels</c> (training sees the pixels the model is served) and the masks with the nearest pixel (<see cref="NearestResize"/>), trains in TorchSharp
/// (<see cref="SegmentationTrainer"/>), exports the model with a class map at the input image's size
/// (<see cref="SegmentationOnnxOptions.ImageSizeOutput"/>: ArgMax at W x H, then the nearest-pixel resize to the image inside the
/// graph) and returns a chain of ML.NET transformers: <c>CopyColumns</c>, the <c>MaeMl.ImageSize</c> <c>CustomMapping</c>
/// (<see cref="ImageSizeMappingFactory"/>, found by <c>Model.Load</c> in MaeMl.dll by itself), <c>ResizeImages</c>, <c>ExtractPixels</c>,
/// <c>ApplyOnnxModel</c>, copies (and with a predicted-label column a <c>MapValue</c> to keys named by the classes) and drops.
/// Out: <see cref="MaeSemanticSegmentationOptions.PredictedMaskColumnName"/>, a variable-size vector of <see cref="uint"/> class ids,
/// height x width of each input image, row-major. <see cref="Predict"/> runs the trained TorchSharp model on the same pixels and resizes
/// its class map the same way. Training holds the images and masks in memory at the model's size. Seed, log and cancellation come
/// from the catalog's <see cref="MLContext"/>; the scoring device is resolved by <see cref="OnnxDevice"/>.
/// </summary>
public sealed class MaeSemanticSegmentationTrainer : IEstimator<ITransformer>
{
    readonly MaeSemanticSegmentationOptions options;
    readonly MLNetHost host;
    readonly MLContext ml;
    readonly int seed;

    internal MaeSemanticSegmentationTrainer(MaeSemanticSegmentationOptions options, MLNetHost host)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var (name, what) in new[] { (options.ImageColumnName, "image"), (options.MaskColumnName, "mask"), (options.PredictedMaskColumnName, "predicted mask") })
            if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException($"The {what} column name is empty", nameof(options));
        if (options.IgnoreValue < 0) throw new ArgumentException($"IgnoreValue must be 0 or more, got {options.IgnoreValue}", nameof(options));
        if (options.NumClasses is < 2) throw new ArgumentException($"NumClasses must be at least 2, got {options.NumClasses}", nameof(options));
        if (options.ClassNames is { } names && options.NumClasses is { } k && names.Count != k)
            throw new ArgumentException($"{names.Count} class names for NumClasses {k}", nameof(options));
        this.options = options;
        this.host = host;
        seed = options.Seed ?? host.NextSeed();
        ml = host.NewContext(seed);
    }

    void Log(string message, LogLevel level = LogLevel.Information) => host.Log(message, level);

    /// <summary>The last trained model (disposed by the caller), for evaluation or saving with <see cref="SegmentationModelFile"/>.</summary>
    public SegmentationModel? TrainedModel { get; private set; }

    /// <summary>The class names of the last <see cref="Fit"/>, in class-id order.</summary>
    public IReadOnlyList<string> ClassNames { get; private set; } = [];

    /// <summary>The ignore value in effect (the loss and <see cref="Evaluate"/> leave such pixels out).</summary>
    public int IgnoreValue => options.IgnoreValue;

    InputSize Size => options.Encoder.InputSize;

    SegmenterColumns Columns => new(options.ImageColumnName, options.PredictedMaskColumnName, options.PredictedLabelColumnName);

    void CheckImage(DataViewSchema schema, string name, string what)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Could not find {what} column '{name}'");
        if (column.Type is not ImageDataViewType)
            throw new ArgumentOutOfRangeException(nameof(schema), $"The {what} column '{name}' must hold images (MLImage, e.g. from LoadImages), got {column.Type}");
    }

    /// <summary>Trains on the rows of <paramref name="input"/> and returns the fitted chain of ML.NET transformers.</summary>
    /// <exception cref="OperationCanceledException">The catalog's <see cref="MLContext"/> or <see cref="MaeDenseTrainerOptions.CancellationToken"/>
    /// was cancelled (checked before training and before every step).</exception>
    /// <exception cref="InvalidDataException">No rows, a mask that is not grey (R, G and B differ), or no labelled pixel.</exception>
    public ITransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = options;
        CheckImage(input.Schema, o.ImageColumnName, "image");
        CheckImage(input.Schema, o.MaskColumnName, "mask");
        using var cancel = DenseFit.Start(host, o);

        // ---- images through the chain's own preprocessing, masks stretched with the nearest pixel
        var size = Size;
        var (pixels, sizes, masks) = Read(input, withMasks: true);
        if (sizes.Count == 0) throw new InvalidDataException("The training data has no rows");
        int numClasses = o.NumClasses ?? o.ClassNames?.Count ?? InferClasses(masks!);
        var names = (o.ClassNames ?? Enumerable.Range(0, numClasses).Select(i => i.ToString()).ToList()).ToList();
        var labels = new long[masks!.Length];
        long labelled = 0;
        for (long i = 0; i < labels.Length; i++)
        {
            int v = masks[i];
            bool ignored = v == o.IgnoreValue || v >= numClasses;
            labels[i] = ignored ? o.IgnoreValue : v;
            if (!ignored) labelled++;
        }
        if (labelled == 0) throw new InvalidDataException($"No mask pixel holds a class id below {numClasses} other than the ignore value {o.IgnoreValue}");
        var config = new SegmentationConfig(o.Encoder, numClasses, o.Head, o.PyramidChannels, o.PyramidScales) { Attention = o.Attention }.Validate();
        Log($"{sizes.Count} images, {numClasses} classes (ignore {o.IgnoreValue}), {labelled * 100.0 / labels.Length:F1}% of the pixels labelled, model input {size}");

        // ---- train
        var model = DenseFit.Train(o, seed, () => new SegmentationModel(config), m => m.Vit, m =>
        {
            using var data = SegmentationDataset.FromPixels(pixels, labels, size, numClasses, o.IgnoreValue);
            return SegmentationTrainer.Train(m, data, o.Training with { Seed = seed }, msg => Log(msg), cancel.Token, classNames: names);
        }, msg => Log(msg));
        TrainedModel?.Dispose();
        TrainedModel = model;
        ClassNames = names;

        var onnx = Google.Protobuf.MessageExtensions.ToByteArray(SegmentationOnnxExporter.Build(model, new SegmentationOnnxOptions { ImageSizeOutput = true, ClassNames = names }));
        var device = DenseFit.Serve(o, onnx, "exported the segmenter to ONNX (class map at the input image's size)", Log);
        return DenseScoring.FitSegmenter(ml, input, onnx, names, size, Columns, device, o.FallbackToCpu);
    }

    int InferClasses(byte[] masks)
    {
        int max = -1;
        foreach (var v in masks) if (v != options.IgnoreValue && v > max) max = v;
        if (max < 0) throw new InvalidDataException($"Every mask pixel is the ignore value {options.IgnoreValue}");
        int k = Math.Max(2, max + 1);
        Log($"{k} classes (one more than the largest class id in the masks; set NumClasses or ClassNames to fix it)");
        return k;
    }

    /// <summary>
    /// The class ids of <see cref="TrainedModel"/> for the rows of <paramref name="input"/>, computed in TorchSharp on the pixels of the
    /// chain's own preprocessing (ArgMax at the model's W x H, then <see cref="NearestResize"/> to the image's size): one row-major height x width
    /// array per row, what the fitted ML.NET model returns up to float rounding at ties.
    /// </summary>
    public List<uint[]> Predict(IDataView input, int batchSize = 16)
    {
        var model = TrainedModel ?? throw new InvalidOperationException("Fit the trainer first");
        var size = model.Config.Encoder.InputSize;
        var (pixels, sizes, _) = Read(input, withMasks: false);
        using var data = SegmentationDataset.FromPixels(pixels, new long[sizes.Count * size.Pixels], size, model.Config.NumClasses, options.IgnoreValue);
        using var predicted = SegmentationTrainer.Predict(model, data.Images, batchSize);
        var maps = predicted.data<long>().ToArray();
        int plane = size.Pixels;
        return sizes.Select((wh, i) => NearestResize.Resize<long>(maps.AsSpan(i * plane, plane), size.Width, size.Height, wh.Width, wh.Height).Select(v => (uint)v).ToArray()).ToList();
    }

    /// <summary>
    /// mIoU, per-class IoU and pixel accuracy (<see cref="SegmentationMetrics"/>) of a scored view at the images' own size: the ground truth
    /// in the mask column (which must have each image's size), the prediction in the predicted-mask column.
    /// </summary>
    /// <exception cref="InvalidDataException">A mask does not have the size of its predicted mask.</exception>
    public SegmentationMetrics Evaluate(IDataView scored)
    {
        int k = TrainedModel?.Config.NumClasses ?? options.NumClasses ?? options.ClassNames?.Count ?? throw new InvalidOperationException("Fit the trainer first (the number of classes is not known)");
        var metrics = new SegmentationMetrics(k, options.IgnoreValue);
        var columns = new[] { scored.Schema[options.MaskColumnName], scored.Schema[options.PredictedMaskColumnName] };
        using var cursor = scored.GetRowCursor(columns);
        var getMask = cursor.GetGetter<MLImage>(columns[0]);
        var getPredicted = cursor.GetGetter<VBuffer<uint>>(columns[1]);
        MLImage mask = null!;
        VBuffer<uint> predicted = default;
        while (cursor.MoveNext())
        {
            getMask(ref mask);
            getPredicted(ref predicted);
            var truth = MaskClassIds(mask, cursor.Position);
            var p = predicted.DenseValues().Select(v => (int)v).ToArray();
            if (p.Length != truth.Length)
                throw new InvalidDataException($"Row {cursor.Position}: the mask is {mask.Width}x{mask.Height} ({truth.Length} pixels), the prediction has {p.Length} pixels (the image's size)");
            metrics.Add(p, truth.Select(v => (int)v).ToArray());
        }
        return metrics;
    }

    /// <summary>The class ids of a mask image, row-major: its red channel (a grey PNG decodes to R = G = B).</summary>
    /// <exception cref="InvalidDataException">The image is not grey.</exception>
    internal static byte[] MaskClassIds(MLImage mask, long row)
    {
        if (mask is null) throw new InvalidDataException($"Row {row}: the mask column holds no image");
        var bytes = mask.Pixels;
        int n = mask.Width * mask.Height;
        if (bytes.Length != 4L * n) throw new InvalidDataException($"Row {row}: {bytes.Length} mask bytes for a {mask.Width}x{mask.Height} image");
        int r = mask.PixelFormat == MLPixelFormat.Bgra32 ? 2 : 0;
        var ids = new byte[n];
        for (int i = 0; i < n; i++)
        {
            byte v = bytes[4 * i + r];
            if (bytes[4 * i] != bytes[4 * i + 1] || bytes[4 * i + 1] != bytes[4 * i + 2])
                throw new InvalidDataException($"Row {row}: the mask is not grey at pixel ({i % mask.Width}, {i / mask.Width}) (R, G, B = {bytes[4 * i + r]}, {bytes[4 * i + 1]}, {bytes[4 * i + 2 - r]}): " +
                                               "masks are single-channel PNGs whose pixel value is the class id (a palette PNG decodes to its colours)");
            ids[i] = v;
        }
        return ids;
    }

    /// <summary>The model-size RGB planes (0..255) and the original (width, height) of every row, through the chain's preprocessing, and
    /// the masks' class ids stretched to the model's W x H with the nearest pixel.</summary>
    (float[] Pixels, List<(int Width, int Height)> Sizes, byte[]? Masks) Read(IDataView input, bool withMasks)
    {
        var size = Size;
        var view = DenseScoring.FitPreprocessing(ml, input, options.ImageColumnName, size, DenseScoring.SegmentationResized).Transform(input);
        int plane = 3 * size.Pixels;
        var pixels = new List<float>();
        var masks = withMasks ? new List<byte>() : null;
        var sizes = new List<(int, int)>();
        var columns = new List<DataViewSchema.Column> { view.Schema[Onnx.EncoderOnnxNames.Pixels], view.Schema[Detection.DetectionOnnxNames.ImageSize] };
        if (withMasks) columns.Add(view.Schema[options.MaskColumnName]);
        using var cursor = view.GetRowCursor(columns);
        var getPixels = cursor.GetGetter<VBuffer<float>>(columns[0]);
        var getSize = cursor.GetGetter<VBuffer<float>>(columns[1]);
        var getMask = withMasks ? cursor.GetGetter<MLImage>(columns[2]) : null;
        VBuffer<float> p = default, s = default;
        MLImage mask = null!;
        int mismatched = 0;
        while (cursor.MoveNext())
        {
            getPixels(ref p); getSize(ref s);
            if (p.Length != plane) throw new InvalidDataException($"Row {cursor.Position}: {p.Length} pixel values, expected {plane}");
            pixels.AddRange(p.DenseValues());
            var wh = s.DenseValues().ToArray();
            sizes.Add(((int)wh[0], (int)wh[1]));
            if (getMask is not null)
            {
                getMask(ref mask);
                var ids = MaskClassIds(mask, cursor.Position);
                if (mask.Width != (int)wh[0] || mask.Height != (int)wh[1])
                {
                    if (mismatched++ == 0) Log($"warning: row {cursor.Position}: the mask is {mask.Width}x{mask.Height}, the image {wh[0]}x{wh[1]}; both are stretched to {size}", LogLevel.Warning);
                }
                masks!.AddRange(NearestResize.Resize<byte>(ids, mask.Width, mask.Height, size.Width, size.Height));
            }
        }
        if (mismatched > 1) Log($"warning: {mismatched} masks differ in size from their images", LogLevel.Warning);
        return (pixels.ToArray(), sizes, masks?.ToArray());
    }

    /// <summary>The output columns, from the chain's built-in estimators over a stand-in ONNX model with the segmenter's output
    /// (the image-size mapping adds columns the chain drops again, so it is left out here).</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        foreach (var name in new[] { options.ImageColumnName, options.MaskColumnName })
            if (!inputSchema.Any(c => c.Name == name)) throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Could not find input column '{name}'");
        var names = options.ClassNames ?? Enumerable.Range(0, options.NumClasses ?? 2).Select(i => i.ToString()).ToList();
        return DenseScoring.SegmenterOutputSchema(ml, inputSchema, Size, Columns, names);
    }
}
