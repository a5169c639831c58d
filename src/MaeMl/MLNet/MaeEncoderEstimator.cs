using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Transforms.Onnx;

namespace MaeMl.MLNet;

/// <summary>
/// Featurizes images with a MAE encoder exported to ONNX. It checks the input column and the model file with messages
/// that name them, then fits a chain of ML.NET's own estimators: <c>ResizeImages</c> and <c>ExtractPixels</c> (RGB planes,
/// 0..255; skipped for a float-vector input), <c>ApplyOnnxModel</c> (normalisation happens in the graph), then a copy to
/// the output column and the removal of the temporary columns. The fitted transformer is therefore made of ML.NET
/// transformers only: <c>mlContext.Model.Save</c> and <c>Load</c> work without MaeMl, with the ONNX model stored inside.
/// Create it with <see cref="MaeEncoderCatalog.ApplyMaeEncoder(TransformsCatalog, MaeEncoderOptions)"/>.
/// </summary>
public sealed class MaeEncoderEstimator : IEstimator<ITransformer>
{
    /// <summary>Temporary column holding the resized image.</summary>
    public const string ResizedImageColumn = "MaeEncoder.ResizedImage";

    readonly TransformsCatalog catalog;
    readonly MaeEncoderOptions options;

    /// <summary>The model file's input and outputs.</summary>
    public EncoderOnnxModelInfo Model { get; }

    internal MaeEncoderEstimator(TransformsCatalog catalog, MaeEncoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.OutputColumnName)) throw new ArgumentException("The output column name is empty", nameof(options));
        if (string.IsNullOrWhiteSpace(options.InputColumnName)) throw new ArgumentException("The input column name is empty", nameof(options));
        this.catalog = catalog;
        this.options = options;
        Model = EncoderOnnxModelInfo.Read(options.ModelFile);
        if (!Model.IncludesPreprocessing)
            throw new ArgumentException($"The encoder model '{options.ModelFile}' was exported without preprocessing (input '{Model.InputName}'); ML.NET pipelines need the 0..255 pixel input: export it with preprocessing", nameof(options));
        Model.RequireOutput(options.Pooling);
        if (options.ImageSize != 0 && options.ImageSize != Model.ImageSize)
            throw new ArgumentException($"ImageSize is {options.ImageSize} but the encoder model '{options.ModelFile}' takes {Model.ImageSize}x{Model.ImageSize} images", nameof(options));
        if (Model.InChans != 3)
            throw new ArgumentException($"The encoder model '{options.ModelFile}' takes {Model.InChans} channels; image columns give RGB (3)", nameof(options));
    }

    /// <summary>Values per row of the output column.</summary>
    public int OutputSize => Model.OutputSize(options.Pooling);

    enum InputKind { Image, Pixels }

    string Expected => $"image (MLImage) or vector of Single with {Model.PixelCount} values (3x{Model.ImageSize}x{Model.ImageSize} RGB planes, 0..255)";

    InputKind CheckInput(SchemaShape schema)
    {
        var name = options.InputColumnName;
        var found = schema.Where(c => c.Name == name).ToList();
        if (found.Count == 0) throw new ArgumentOutOfRangeException(nameof(schema), $"Could not find input column '{name}'");
        var column = found[^1];
        if (column.Kind == SchemaShape.Column.VectorKind.Scalar && column.ItemType is ImageDataViewType) return InputKind.Image;
        if (column.Kind == SchemaShape.Column.VectorKind.Vector && column.ItemType == NumberDataViewType.Single) return InputKind.Pixels;
        var got = column.Kind == SchemaShape.Column.VectorKind.Scalar ? column.ItemType.ToString() : $"{column.Kind} of {column.ItemType}";
        throw new ArgumentOutOfRangeException(nameof(schema), $"Schema mismatch for input column '{name}': expected {Expected}, got {got}");
    }

    InputKind CheckInput(DataViewSchema schema)
    {
        var name = options.InputColumnName;
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Could not find input column '{name}'");
        switch (column.Type)
        {
            case ImageDataViewType: return InputKind.Image;
            case VectorDataViewType v when v.ItemType == NumberDataViewType.Single && v.Size == Model.PixelCount: return InputKind.Pixels;
            case VectorDataViewType v when v.ItemType == NumberDataViewType.Single:
                throw new ArgumentOutOfRangeException(nameof(schema),
                    $"Schema mismatch for input column '{name}': expected {Expected}, got vector of {(v.Size == 0 ? "variable size" : $"{v.Size} values")}");
            default: throw new ArgumentOutOfRangeException(nameof(schema), $"Schema mismatch for input column '{name}': expected {Expected}, got {column.Type}");
        }
    }

    readonly Dictionary<InputKind, EstimatorChain<ITransformer>> chains = new();

    /// <summary>Inputs up to this side (px) are scored with one ONNX Runtime thread unless <see cref="MaeEncoderOptions.IntraOpThreads"/> says otherwise.</summary>
    public const int SingleThreadMaxImageSize = 64;

    /// <summary>The chain for an input kind, built once (building ApplyOnnxModel loads the model).</summary>
    EstimatorChain<ITransformer> Chain(InputKind kind)
    {
        lock (chains)
        {
            if (!chains.TryGetValue(kind, out var chain)) chains[kind] = chain = BuildChain(kind);
            return chain;
        }
    }

    EstimatorChain<ITransformer> BuildChain(InputKind kind)
    {
        var onnxOutput = EncoderOnnxNames.Output(options.Pooling);
        var chain = new EstimatorChain<ITransformer>();
        var temporary = new List<string>();
        if (kind == InputKind.Image)
        {
            chain = ImagePixels.Chain(catalog, options.InputColumnName, Model.ImageSize, ResizedImageColumn, Model.InputName, options.ResizeMode, options.CropAnchor);
            temporary.Add(ResizedImageColumn);
        }
        else
        {
            chain = chain.Append<ITransformer>(catalog.CopyColumns(Model.InputName, options.InputColumnName));
        }
        temporary.Add(Model.InputName);
        chain = chain.Append<ITransformer>(catalog.ApplyOnnxModel(new OnnxOptions
        {
            ModelFile = options.ModelFile,
            InputColumns = [Model.InputName],
            OutputColumns = [onnxOutput],
            GpuDeviceId = OnnxDevice.Resolve(options.GpuDeviceId, options.FallbackToCpu),
            FallbackToCpu = options.FallbackToCpu,
            IntraOpNumThreads = options.IntraOpThreads ?? (Model.ImageSize <= SingleThreadMaxImageSize ? 1 : null),
        }));
        if (onnxOutput != options.OutputColumnName)
        {
            chain = chain.Append<ITransformer>(catalog.CopyColumns(options.OutputColumnName, onnxOutput));
            temporary.Add(onnxOutput);
        }
        temporary.RemoveAll(t => t == options.OutputColumnName || t == options.InputColumnName);
        return temporary.Count == 0 ? chain : chain.Append<ITransformer>(catalog.DropColumns(temporary.ToArray()));
    }

    /// <inheritdoc/>
    public ITransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Chain(CheckInput(input.Schema)).Fit(input);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => Chain(CheckInput(inputSchema)).GetOutputSchema(inputSchema);
}
